// Package config is Ocelot's configuration model: one table of parameters
// (name, type, default, validation, whether the datastore may set it, whether
// it may change while the agent runs) and the loaders that feed it.
//
// Sources, lowest precedence first:
//
//	built-in default
//	FelixConfiguration "default"        (datastore, via FromDatastore)
//	FelixConfiguration "node.<hostname>" (datastore, via FromDatastore)
//	libcalico-go environment (ETCD_ENDPOINTS, DATASTORE_TYPE, ...)
//	config file (/etc/calico/felix.cfg, every INI section)
//	FELIX_* environment variables
//
// Names are case-insensitive in every source, an empty value is unset and
// "none" sets the zero value. Every bad value yields one Problem naming its
// source (file and line, or variable), the parameter, the value and the rule
// broken. Problems on die-on-fail parameters are fatal; the others are
// warnings and the value is ignored, so the next source down (usually the
// default) applies.
//
// This package does no I/O beyond reading the config file and the
// environment it is handed; it never talks to etcd.
package config
