package dualwrite

import (
	"context"

	"github.com/schemashift/schemashift/flags"
)

// route is one row of the stage table: who is authoritative, whether the
// other origin is written after it, and whether it is read in shadow.
type route struct {
	authority Origin
	secondary bool // write the other origin after the authoritative one
	shadow    bool // read the other origin in shadow and compare
}

var routes = [...]route{
	flags.Off:       {authority: Old},
	flags.DualWrite: {authority: Old, secondary: true},
	flags.Shadow:    {authority: Old, secondary: true, shadow: true},
	flags.Live:      {authority: New, secondary: true, shadow: true},
	flags.Rampdown:  {authority: New, secondary: true},
	flags.Complete:  {authority: New},
}

// routeOf returns the stage table row of s; an invalid stage (which the
// flags package never yields) is treated as off.
func routeOf(s flags.Stage) route {
	if s.Valid() {
		return routes[s]
	}
	return routes[flags.Off]
}

func (o Origin) other() Origin { return 1 - o }

// StageSource yields the stage of one migration for each call; *flags.Flag
// is one.
type StageSource interface {
	Migration() string
	Stage(ctx context.Context) flags.Stage
}

var _ StageSource = (*flags.Flag)(nil)
