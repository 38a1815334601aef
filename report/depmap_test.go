package report_test

import (
	"encoding/xml"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/ddl"
	"github.com/schemashift/schemashift/flags"
	"github.com/schemashift/schemashift/fleet"
	"github.com/schemashift/schemashift/internal/dbtest"
	"github.com/schemashift/schemashift/internal/rollouttest"
	"github.com/schemashift/schemashift/report"
	"github.com/schemashift/schemashift/rollout"
)

// The map follows the plans and the live instances: services and builds
// appear as they heartbeat and go as they age out.
func TestDependencyMap(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, testDependencyMap)
}

func testDependencyMap(t *testing.T, db *sqlx.DB) {
	t.Parallel()
	rollouttest.UsersDB(t, db)
	ctx := t.Context()
	users := rollouttest.UsersPlan(db)
	orders := rollout.Plan{Migration: "orders_move_amount",
		ExpandOps:   []ddl.Op{ddl.AddTable{Table: "order_totals", Columns: "order_id bigint PRIMARY KEY"}},
		ContractOps: []ddl.Op{ddl.DropColumn{Table: "orders", Column: "amount_cents"}}}
	const ageOut = time.Minute
	clk := rollouttest.NewClock()
	c, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{users, orders}, rollout.WithAgeOut(ageOut), rollout.WithClock(clk.Now))
	require.NoError(t, err)
	api := rollouttest.InstanceAt(t, db, "api-1", "users_split_name", clk.Now)
	rollouttest.Beat(t, api, flags.Off)
	worker, err := fleet.NewInstance(db, "billing", "v9", []string{"orders_move_amount", "users_split_name"}, fleet.WithID("billing-1"),
		fleet.WithClock(clk.Now))
	require.NoError(t, err)
	require.NoError(t, worker.Beat(ctx))

	m, err := report.Dependencies(ctx, c)
	require.NoError(t, err)
	require.Len(t, m.Services, 2)
	assert.Equal(t, report.ServiceNode{Service: "billing", Builds: []string{"v9"}, Instances: 1,
		Migrations: []string{"orders_move_amount", "users_split_name"}}, m.Services[0])
	assert.Equal(t, report.ServiceNode{Service: "users-api", Builds: []string{"v2"}, Instances: 1, Migrations: []string{"users_split_name"}}, m.Services[1])
	require.Len(t, m.Migrations, 2)
	assert.Equal(t, []string{"order_totals", "orders"}, m.Migrations[0].Tables)
	assert.Equal(t, []string{"users"}, m.Migrations[1].Tables)
	require.Len(t, m.Tables, 3)
	assert.Equal(t, report.TableNode{Table: "users", Columns: []string{"family_name", "given_name"}}, m.Tables[2])
	assert.Equal(t, report.TableNode{Table: "orders", Columns: []string{"amount_cents"}}, m.Tables[1])

	// The SVG is well-formed and draws every node and edge.
	svg := m.SVG()
	var doc struct {
		XMLName xml.Name
	}
	require.NoError(t, xml.Unmarshal([]byte(svg), &doc))
	assert.Equal(t, "svg", doc.XMLName.Local)
	for _, node := range []string{"service:billing", "service:users-api", "migration:users_split_name", "table:order_totals"} {
		assert.Contains(t, svg, `data-node="`+node+`"`)
	}
	assert.Equal(t, 3+3, strings.Count(svg, `class="edge"`), "3 service→migration and 3 migration→table edges")
	assert.NotContains(t, svg, "<script")

	// The billing worker goes away: it is on the map until its age-out
	// has passed, and off it after.
	clk.Add(ageOut - time.Microsecond)
	rollouttest.Beat(t, api, flags.Off)
	m, err = report.Dependencies(ctx, c)
	require.NoError(t, err)
	require.Len(t, m.Services, 2, "billing's last heartbeat is a microsecond short of its age-out")
	assert.Equal(t, 1, m.Services[0].Instances)
	clk.Add(time.Microsecond)
	m, err = report.Dependencies(ctx, c)
	require.NoError(t, err)
	require.Len(t, m.Services, 1)
	assert.Equal(t, "users-api", m.Services[0].Service)
	assert.Equal(t, 1, m.Services[0].Instances)
}

// A live old build of a service that does not know a migration is on the
// map: it is the instance that holds the migration's fleet gates.
func TestDependencyMapShowsUnawareBuilds(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, testDependencyMapShowsUnawareBuilds)
}

func testDependencyMapShowsUnawareBuilds(t *testing.T, db *sqlx.DB) {
	t.Parallel()
	rollouttest.UsersDB(t, db)
	ctx := t.Context()
	clk := rollouttest.NewClock()
	c, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{rollouttest.UsersPlan(db)}, rollout.WithClock(clk.Now))
	require.NoError(t, err)
	rollouttest.Beat(t, rollouttest.InstanceAt(t, db, "api-new", "users_split_name", clk.Now), flags.Off)
	old, err := fleet.NewInstance(db, "users-api", "v1 <old>", nil, fleet.WithID("api-old"), fleet.WithClock(clk.Now))
	require.NoError(t, err)
	require.NoError(t, old.Beat(ctx))

	m, err := report.Dependencies(ctx, c)
	require.NoError(t, err)
	require.Len(t, m.Services, 1)
	s := m.Services[0]
	assert.Equal(t, []string{"v1 <old>", "v2"}, s.Builds)
	assert.Equal(t, []report.UnawareBuild{{Build: "v1 <old>", Migration: "users_split_name", Instances: 1}}, s.Unaware)
	svg := m.SVG()
	require.NoError(t, xml.Unmarshal([]byte(svg), new(struct{ XMLName xml.Name })))
	assert.Contains(t, svg, `class="edge unaware" data-from="service:users-api" data-to="migration:users_split_name"`)
	assert.Contains(t, svg, "v1 &lt;old&gt; unaware")
}
