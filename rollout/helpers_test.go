package rollout_test

import (
	"github.com/schemashift/schemashift/dualwrite"
	"github.com/schemashift/schemashift/flags"
)

func comparison(match bool) dualwrite.Comparison {
	return dualwrite.Comparison{Migration: "users_split_name", Stage: flags.Shadow, Match: match}
}

const racerEnv = "SCHEMASHIFT_ROLLOUT_RACER"

func racerMain() int { return 2 }
