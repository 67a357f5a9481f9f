module peerpods-conformance/podvm-agent

go 1.21

require (
	github.com/BurntSushi/toml v1.2.0
	gopkg.in/yaml.v3 v3.0.1
)
