package metadata

import "strings"

// HelpdeskFieldExpr returns the SQLite expression of a (dotted) field used both by CREATE INDEX and by the
// pushed-down queries of helpdesk_pushdown.go, so that SQLite can use the index for them.
//
// _id keeps the JSON text form (->) that IDColumn uses; every other field ends with ->> so that numbers
// and dates (stored as milliseconds) compare and sort as numbers, and strings as strings.
func HelpdeskFieldExpr(field string) string {
	if field == "_id" {
		return IDColumn
	}

	parts := strings.Split(field, ".")
	for i, p := range parts {
		parts[i] = "'" + strings.ReplaceAll(p, "'", "''") + "'"
	}

	expr := DefaultColumn
	for i, p := range parts {
		if i == len(parts)-1 {
			expr += "->>" + p
		} else {
			expr += "->" + p
		}
	}

	return expr
}
