// Command ocelot is the Ocelot compute-host policy agent.
//
//	ocelot [run] [-c /etc/calico/felix.cfg]   run the agent (Felix's form: ocelot -c FILE)
//	ocelot config show [-c FILE]              print every parameter's effective value and origin
//	ocelot config check [-c FILE]             validate configuration; exit 1 if anything is invalid
//	ocelot explain ENDPOINT | SRC DST [P/PORT] ask the running agent what applies to an endpoint or a flow
//	ocelot version                            print version, commit and build date
//	ocelot help (or -h, --help)               list the commands
//
// This package only wires: it reads the configuration and connects the
// datastore, the calculation graph, the dataplane and the status writer,
// each built from the configuration by its own package, with one metrics
// registry they all register on. It also sets the Go runtime for each of
// the agent's phases (goruntime.go): every CPU while loading a snapshot,
// one once in sync, as Felix's Go* parameters and the environment allow.
package main
