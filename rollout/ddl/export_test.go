package ddl

// OnStep installs a hook that runs after each recorded step; an error from
// it stops the run, as a crash between steps would.
func OnStep(e *Executor, fn func(op, step int) error) { e.onStep = fn }
