# Ocelot as a host-networked, privileged container:
#   docker build -t ocelot .
#   docker run -d --name ocelot --net=host --privileged \
#     -v /etc/calico:/etc/calico:ro -v /run/xtables.lock:/run/xtables.lock \
#     -v /lib/modules:/lib/modules:ro -v /var/log/calico:/var/log/calico ocelot
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=container
RUN make build VERSION=$VERSION

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends iptables ipset iproute2 conntrack ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/bin/ocelot /usr/bin/ocelot
COPY packaging/felix.cfg.example /etc/calico/felix.cfg.example
ENTRYPOINT ["/usr/bin/ocelot"]
CMD ["run", "-c", "/etc/calico/felix.cfg"]
