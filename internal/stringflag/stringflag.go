// Package stringflag holds what every schemashift OpenFeature provider
// shares: stage flags are strings, so the other evaluation types answer
// with a type mismatch.
package stringflag

import (
	"context"

	"github.com/open-feature/go-sdk/openfeature"
)

// OnlyStrings implements the non-string evaluations of
// openfeature.FeatureProvider as type mismatches; embed it.
type OnlyStrings struct{}

func mismatch() openfeature.ProviderResolutionDetail {
	return openfeature.ProviderResolutionDetail{
		ResolutionError: openfeature.NewTypeMismatchResolutionError("schemashift stage flags are strings"),
		Reason:          openfeature.ErrorReason,
	}
}

// BooleanEvaluation reports a type mismatch.
func (OnlyStrings) BooleanEvaluation(_ context.Context, _ string, d bool, _ openfeature.FlattenedContext) openfeature.BoolResolutionDetail {
	return openfeature.BoolResolutionDetail{Value: d, ProviderResolutionDetail: mismatch()}
}

// FloatEvaluation reports a type mismatch.
func (OnlyStrings) FloatEvaluation(_ context.Context, _ string, d float64, _ openfeature.FlattenedContext) openfeature.FloatResolutionDetail {
	return openfeature.FloatResolutionDetail{Value: d, ProviderResolutionDetail: mismatch()}
}

// IntEvaluation reports a type mismatch.
func (OnlyStrings) IntEvaluation(_ context.Context, _ string, d int64, _ openfeature.FlattenedContext) openfeature.IntResolutionDetail {
	return openfeature.IntResolutionDetail{Value: d, ProviderResolutionDetail: mismatch()}
}

// ObjectEvaluation reports a type mismatch.
func (OnlyStrings) ObjectEvaluation(_ context.Context, _ string, d any, _ openfeature.FlattenedContext) openfeature.InterfaceResolutionDetail {
	return openfeature.InterfaceResolutionDetail{Value: d, ProviderResolutionDetail: mismatch()}
}

// Hooks implements openfeature.FeatureProvider: none.
func (OnlyStrings) Hooks() []openfeature.Hook { return nil }
