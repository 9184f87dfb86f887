package config

// RejectsReload says whether a problem found while re-reading the local
// configuration (SIGHUP, or an edit of the file) must reject the reload,
// keeping the running configuration. A reload is judged on the file's own
// problems:
//
//   - a fatal problem, from any source, rejects it: the resolved
//     configuration cannot be used (start-up would stop on it);
//   - an invalid value in the config file rejects it: the edit is wrong,
//     and applying the rest of it would half-apply the operator's intent;
//   - nothing else does. Problems of the datastore's FelixConfiguration
//     were judged when it arrived and are not the edit's fault; the
//     environment of a running process cannot change, so its problems were
//     accepted at start-up and would otherwise reject every reload; unknown
//     names and parameters Ocelot does not honour are reported, never
//     invalid.
func (p Problem) RejectsReload() bool {
	if p.Severity == Fatal {
		return true
	}
	return p.Class == Invalid && p.Source == SourceFile
}

// RejectsReload reports whether any problem rejects a reload.
func (ps Problems) RejectsReload() bool {
	for _, p := range ps {
		if p.RejectsReload() {
			return true
		}
	}
	return false
}
