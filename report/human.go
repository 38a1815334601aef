package report

import (
	"fmt"
	"time"
)

// HumanDuration writes d the way an operator reads it, in its two largest
// units: "3 h 12 min", "12 min 5 s", "45 s", "350 ms", "800 µs", "2 d 4 h". The
// standard library's form ("3h12m0.52s") is for machines, and the
// module's dependencies give only one unit with words around it ("3 hours
// ago"), which loses the minutes a gate's window is counted in; hence
// this one function.
func HumanDuration(d time.Duration) string {
	if d < 0 {
		return "-" + HumanDuration(-d)
	}
	const day = 24 * time.Hour
	switch {
	case d == 0:
		return "0 s"
	case d < time.Millisecond:
		return fmt.Sprintf("%d µs", d/time.Microsecond)
	case d < time.Second:
		return fmt.Sprintf("%d ms", d/time.Millisecond)
	case d < time.Minute:
		return fmt.Sprintf("%d s", d/time.Second)
	case d < time.Hour:
		return two(int64(d/time.Minute), "min", int64(d%time.Minute/time.Second), "s")
	case d < day:
		return two(int64(d/time.Hour), "h", int64(d%time.Hour/time.Minute), "min")
	default:
		return two(int64(d/day), "d", int64(d%day/time.Hour), "h")
	}
}

func two(a int64, ua string, b int64, ub string) string {
	if b == 0 {
		return fmt.Sprintf("%d %s", a, ua)
	}
	return fmt.Sprintf("%d %s %d %s", a, ua, b, ub)
}
