module ocelot

go 1.26.8

require gopkg.in/ini.v1 v1.67.3

require github.com/stretchr/testify v1.12.1 // indirect
