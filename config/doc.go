// Package config is Ocelot's configuration model: one table of parameters
// and the loaders that feed it. The table (params.go, params_refused.go)
// holds every parameter of Felix, each with its type, default, validation,
// whether the datastore may set it, whether it may change while the agent
// runs, and its status: honoured, honoured differently, not yet honoured
// (planned) or refused, with the reason. docs/parameters.md is generated
// from it.
//
// Sources, lowest precedence first:
//
//	built-in default
//	FelixConfiguration "default"        (datastore, via FromDatastore)
//	FelixConfiguration "node.<hostname>" (datastore, via FromDatastore)
//	libcalico-go environment (ETCD_ENDPOINTS, DATASTORE_TYPE, ...)
//	config file (/etc/calico/felix.cfg, every INI section, the later winning)
//	FELIX_* environment variables
//
// Names are case-insensitive in every source, an empty value is unset and
// "none" sets the zero value. Every value is untrusted: before it is parsed
// it must be valid UTF-8 of printable characters and bounded in size.
//
// Every problem is one Problem naming its source (file and line, variable,
// or resource and field), the parameter, the value (clipped, secrets
// hidden) and the rule broken. Its Class says what it is: an invalid value,
// an unknown name, a set parameter Ocelot does not honour, or a local-only
// parameter from the datastore. Invalid values of die-on-fail parameters,
// and "none" for a parameter that needs a value, are fatal; other invalid
// values are ignored, so the next source down (usually the default)
// applies. Problem.RejectsReload judges a reload on the file's own
// problems.
//
// This package does no I/O beyond reading the config file and the
// environment it is handed; it never talks to etcd.
package config
