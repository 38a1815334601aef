package pgtest

// StandbyDir is the standby's directory.
func StandbyDir(sb *Standby) string { return sb.srv.dir }
