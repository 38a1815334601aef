package report

import (
	"cmp"
	"context"
	"fmt"
	"html"
	"slices"
	"strings"

	"github.com/schemashift/schemashift/ddl"
	"github.com/schemashift/schemashift/fleet"
	"github.com/schemashift/schemashift/ledger"
	"github.com/schemashift/schemashift/rollout"
)

// DependencyMap says which services (and builds) take part in which
// migrations, and which tables and columns each migration touches: from the
// plans, and from the heartbeats of the instances live now. It is a value.
type DependencyMap struct {
	Services   []ServiceNode   `json:"services"`
	Migrations []MigrationNode `json:"migrations"`
	Tables     []TableNode     `json:"tables"`
}

// ServiceNode is one service as its live instances report it. It is a value.
type ServiceNode struct {
	Service string   `json:"service"`
	Builds  []string `json:"builds"` // every live build, those unaware of a migration too
	// Instances counts the live instances that report any migration.
	Instances  int      `json:"instances"`
	Migrations []string `json:"migrations"`
	// Unaware are the live builds of the service that do not know one of
	// the migrations its other builds take part in: old builds, the very
	// instances that hold the migration's fleet gates.
	Unaware []UnawareBuild `json:"unaware,omitempty"`
}

// UnawareBuild is a live build of a service that does not know a
// migration, and how many of its instances are live. It is a value.
type UnawareBuild struct {
	Build     string `json:"build"`
	Migration string `json:"migration"`
	Instances int    `json:"instances"`
}

// MigrationNode is one migration and what it touches. It is a value.
type MigrationNode struct {
	Migration string       `json:"migration"`
	Phase     ledger.Phase `json:"phase"`
	Tables    []string     `json:"tables"`
}

// TableNode is one table and the columns the migrations touch. It is a
// value.
type TableNode struct {
	Table   string   `json:"table"`
	Columns []string `json:"columns"`
}

// touches lists the table → columns a plan reads or changes.
func touches(p rollout.Plan) map[string][]string {
	t := map[string][]string{}
	add := func(table string, cols ...string) {
		if table == "" {
			return
		}
		t[table] = append(t[table], cols...)
	}
	for _, c := range p.Columns {
		add(c.Table, c.Column)
	}
	for _, j := range p.Backfills {
		add(j.Table, j.Key...)
		for _, a := range j.Set {
			add(j.Table, a.Column)
		}
		add(j.Table, j.Columns...)
		if j.Into != nil {
			for _, a := range j.Into.Columns {
				add(j.Into.Table, a.Column)
			}
		}
		if j.Check != nil {
			for _, a := range j.Check.Columns {
				add(j.Check.Table, a.Column)
			}
		}
	}
	for _, o := range append(append([]ddl.Op(nil), p.ExpandOps...), p.ContractOps...) {
		switch o := o.(type) {
		case ddl.AddColumn:
			add(o.Table, o.Column)
		case ddl.AddTable:
			add(o.Table)
		case ddl.CreateIndex:
			add(o.Table, o.Columns...)
		case ddl.AddForeignKey:
			add(o.Table, o.Columns...)
			add(o.RefTable, o.RefColumns...)
		case ddl.AddCheck:
			add(o.Table)
		case ddl.SetNotNull:
			add(o.Table, o.Column)
		case ddl.AddUnique:
			add(o.Table, o.Columns...)
		case ddl.DropColumn:
			add(o.Table, o.Column)
		case ddl.DropTable:
			add(o.Table)
		}
	}
	for k, v := range t {
		slices.Sort(v)
		t[k] = slices.Compact(v)
	}
	return t
}

// Dependencies reads the map of c's migrations now, by c's clock: the
// instances live then.
func Dependencies(ctx context.Context, c *rollout.Coordinator) (DependencyMap, error) {
	now := c.Now()
	db := c.DB()
	m := DependencyMap{Services: []ServiceNode{}, Migrations: []MigrationNode{}, Tables: []TableNode{}}
	tables := map[string][]string{}
	services := map[string]*ServiceNode{}
	for _, name := range c.Migrations() {
		plan, err := c.Plan(name)
		if err != nil {
			return m, err
		}
		st, err := ledger.Get(ctx, db, name)
		if err != nil {
			return m, err
		}
		node := MigrationNode{Migration: name, Phase: st.Phase, Tables: []string{}}
		for t, cols := range touches(plan) {
			node.Tables = append(node.Tables, t)
			tables[t] = append(tables[t], cols...)
		}
		slices.Sort(node.Tables)
		m.Migrations = append(m.Migrations, node)
		live, err := fleet.Read(ctx, db, name, c.AgeOut(), now)
		if err != nil {
			return m, err
		}
		for _, in := range live.Instances {
			s := services[in.Service]
			if s == nil {
				s = &ServiceNode{Service: in.Service}
				services[in.Service] = s
			}
			s.Builds = append(s.Builds, in.Build)
			s.Migrations = append(s.Migrations, name)
		}
		unaware := map[[2]string]int{} // service, build → instances
		for _, in := range live.Unaware {
			unaware[[2]string{in.Service, in.Build}]++
		}
		for k, n := range unaware {
			s := services[k[0]] // there: Unaware are of services that report the migration
			if s == nil {
				s = &ServiceNode{Service: k[0]}
				services[k[0]] = s
			}
			s.Builds = append(s.Builds, k[1])
			s.Unaware = append(s.Unaware, UnawareBuild{Build: k[1], Migration: name, Instances: n})
		}
	}
	// Instances counted once, whatever the number of migrations they report.
	counts, err := fleet.InstancesPerService(ctx, db, c.AgeOut(), now)
	if err != nil {
		return m, err
	}
	for service, n := range counts {
		if s := services[service]; s != nil {
			s.Instances = n
		}
	}
	for _, s := range services {
		slices.Sort(s.Builds)
		s.Builds = slices.Compact(s.Builds)
		slices.Sort(s.Migrations)
		s.Migrations = slices.Compact(s.Migrations)
		slices.SortFunc(s.Unaware, func(a, b UnawareBuild) int {
			return cmp.Or(strings.Compare(a.Migration, b.Migration), strings.Compare(a.Build, b.Build))
		})
		m.Services = append(m.Services, *s)
	}
	slices.SortFunc(m.Services, func(a, b ServiceNode) int { return strings.Compare(a.Service, b.Service) })
	for t, cols := range tables {
		slices.Sort(cols)
		m.Tables = append(m.Tables, TableNode{Table: t, Columns: slices.Compact(cols)})
	}
	slices.SortFunc(m.Tables, func(a, b TableNode) int { return strings.Compare(a.Table, b.Table) })
	return m, nil
}

// SVG draws the map: services on the left, migrations in the middle,
// tables (with their columns) on the right, an edge wherever one touches
// the next. Self-contained: no script, no external asset.
func (m DependencyMap) SVG() string {
	const (
		colW, boxW, rowH, pad = 260, 220, 64, 16
	)
	rows := max(len(m.Services), len(m.Migrations), len(m.Tables), 1)
	height := pad*2 + rows*rowH
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`,
		colW*3, height, colW*3, height)
	b.WriteString(`<title>schemashift dependency map</title>`)
	pos := map[string][2]int{} // node key → center-left x, center y
	box := func(key string, col, row int, title, sub, fill string) {
		x, y := pad+col*colW, pad+row*rowH
		pos[key] = [2]int{x, y + (rowH-12)/2}
		fmt.Fprintf(&b, `<g class="node" data-node="%s"><rect x="%d" y="%d" width="%d" height="%d" rx="6" fill="%s" stroke="#555"/>`,
			html.EscapeString(key), x, y, boxW, rowH-12, fill)
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-weight="bold">%s</text>`, x+8, y+18, html.EscapeString(title))
		fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#333">%s</text></g>`, x+8, y+36, html.EscapeString(truncateText(sub, 34)))
	}
	for i, s := range m.Services {
		sub, fill := fmt.Sprintf("%d instances · %s", s.Instances, strings.Join(s.Builds, ", ")), "#e8f0fe"
		if len(s.Unaware) > 0 {
			sub, fill = fmt.Sprintf("%s unaware · %s", s.Unaware[0].Build, sub), "#fce8e6"
		}
		box("service:"+s.Service, 0, i, s.Service, sub, fill)
	}
	for i, mg := range m.Migrations {
		box("migration:"+mg.Migration, 1, i, mg.Migration, "phase "+mg.Phase.String(), "#fef7e0")
	}
	for i, t := range m.Tables {
		box("table:"+t.Table, 2, i, t.Table, strings.Join(t.Columns, ", "), "#e6f4ea")
	}
	edge := func(from, to string, unaware bool) {
		a, okA := pos[from]
		z, okZ := pos[to]
		if !okA || !okZ {
			return
		}
		class, stroke := "edge", `stroke="#777"`
		if unaware {
			class, stroke = "edge unaware", `stroke="#b3261e" stroke-dasharray="6 4"`
		}
		fmt.Fprintf(&b, `<line class="%s" data-from="%s" data-to="%s" x1="%d" y1="%d" x2="%d" y2="%d" %s/>`,
			class, html.EscapeString(from), html.EscapeString(to), a[0]+boxW, a[1], z[0], z[1], stroke)
	}
	for _, s := range m.Services {
		for _, mg := range s.Migrations {
			// Drawn as a warning where a live build of the service does not know it.
			edge("service:"+s.Service, "migration:"+mg, slices.ContainsFunc(s.Unaware, func(u UnawareBuild) bool { return u.Migration == mg }))
		}
	}
	for _, mg := range m.Migrations {
		for _, t := range mg.Tables {
			edge("migration:"+mg.Migration, "table:"+t, false)
		}
	}
	b.WriteString(`</svg>`)
	return b.String()
}

func truncateText(s string, n int) string {
	if len([]rune(s)) <= n {
		return s
	}
	return string([]rune(s)[:n-1]) + "…"
}
