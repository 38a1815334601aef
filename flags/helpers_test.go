package flags_test

import "time"

const (
	timeout = 5 * time.Second
	tick    = 5 * time.Millisecond
)
