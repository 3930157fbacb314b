package store

import (
	"context"
	"fmt"
	"strings"
)

// column is one column of a batched insert: its name and, for
// PostgreSQL, the array type its values are sent as.
type column struct {
	name   string
	pgType string // "text[]" or "bigint[]"
}

// batchInsert writes rows (one value per column each: string or int64)
// with as few statements as the database allows, followed by tail (an ON
// CONFLICT clause). A chunk's aggregates are hundreds of rows; one round
// trip each made the database round trips, not the parsing, what capped
// ingest (docs/scale.md). PostgreSQL takes every row in one statement
// through unnest over one array per column (a single statement text, so
// pgx's statement cache holds one entry); SQLite takes multi-row VALUES,
// cut to stay under its 32,766 host parameters.
//
// Rows must not repeat a conflict key: PostgreSQL refuses to update one
// row twice in a statement (the callers' maps guarantee it).
func (s *Store) batchInsert(ctx context.Context, tx execer, table string, cols []column, tail string, rows [][]any) error {
	if len(rows) == 0 {
		return nil
	}
	if tail != "" {
		// An upsert locks the rows it updates: one lock order for
		// concurrent upserts (see upsertRows). A plain insert (the pending
		// rollup rows) locks no row another transaction writes, and its
		// rows are the most of a chunk's: not sorted.
		sortRows(rows)
	}
	return s.insertRows(ctx, tx, table, cols, tail, rows)
}

// insertRows is batchInsert without the sort (rows in the order given).
func (s *Store) insertRows(ctx context.Context, tx execer, table string, cols []column, tail string, rows [][]any) error {
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.name
	}
	head := "INSERT INTO " + table + " (" + strings.Join(names, ", ") + ") "
	if s.dialect == Postgres {
		sel, args := pgUnnest(cols, rows)
		_, err := tx.ExecContext(ctx, head+sel+" "+tail, args...)
		return err
	}
	per := min(500, 32766/len(cols))
	row := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(cols)), ", ") + ")"
	for len(rows) > 0 {
		n := min(per, len(rows))
		var b strings.Builder
		b.WriteString(head)
		b.WriteString("VALUES ")
		args := make([]any, 0, n*len(cols))
		for j, r := range rows[:n] {
			if j > 0 {
				b.WriteString(", ")
			}
			b.WriteString(row)
			args = append(args, r...)
		}
		b.WriteString(" ")
		b.WriteString(tail)
		if _, err := tx.ExecContext(ctx, b.String(), args...); err != nil {
			return err
		}
		rows = rows[n:]
	}
	return nil
}

// pgUnnest is the SELECT of rows as one array per column (PostgreSQL's
// "SELECT * FROM unnest($1::text[], …)") and its arguments.
func pgUnnest(cols []column, rows [][]any) (sel string, args []any) {
	args = make([]any, len(cols))
	ph := make([]string, len(cols))
	for i, c := range cols {
		ph[i] = fmt.Sprintf("$%d::%s", i+1, c.pgType)
		switch c.pgType {
		case "text[]":
			v := make([]string, len(rows))
			for j, r := range rows {
				v[j] = r[i].(string)
			}
			args[i] = v
		default:
			v := make([]int64, len(rows))
			for j, r := range rows {
				v[j] = r[i].(int64)
			}
			args[i] = v
		}
	}
	return "SELECT * FROM unnest(" + strings.Join(ph, ", ") + ")", args
}
