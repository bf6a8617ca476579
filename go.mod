module github.com/myno-bridge/myno

go 1.26.8

require github.com/piprate/json-gold v0.9.1

require (
	github.com/cayleygraph/quad v1.3.0 // indirect
	github.com/google/go-cmp v0.7.0 // indirect
	github.com/openconfig/goyang v1.6.3 // indirect
	github.com/pquerna/cachecontrol v0.2.0 // indirect
	github.com/stretchr/testify v1.12.1 // indirect
	github.com/urfave/cli/v3 v3.14.0 // indirect
)
