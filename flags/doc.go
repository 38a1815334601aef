// Package flags decides, per call, which [Stage] of a migration a service is
// in. Each migration has one string flag whose variants are the six stage
// names; it is evaluated through an OpenFeature client with the evaluation
// context carried by the call's ctx, so a stage can be rolled out by
// percentage, tenant or instance.
//
// The stages and what a service does in each:
//
//	stage      writes            authoritative  reads
//	off        old               old            old
//	dualwrite  old, then new     old            old
//	shadow     old, then new     old            old; new in shadow, compared
//	live       new, then old     new            new; old in shadow, compared
//	rampdown   new, then old     new            new
//	complete   new               new            new
//
// An [Evaluator] wraps a [Client] (an *openfeature.Client from an API
// instance the application owns; this package never uses OpenFeature's
// global state) and hands out one [Flag] per migration. [Flag.Stage] never
// fails: when the provider errors, is not ready, or returns a string that
// names no stage, it yields the fallback stage — the last stage seen for that
// migration in this process, else [Off], unless [WithFallback] fixes one —
// and counts the fallback ([Evaluator.Stats]) and reports it to an
// [Observer].
//
// Unit tests use package flagstest, a fake provider with stages set per test.
package flags
