package sqlite

// Helpdesk extension: push equality, $in, range, sort and limit down to SQLite when one index covers them.
//
// FerretDB v1.24 pushes only `_id` equality down to SQLite, so every other query reads and decodes the whole
// collection. This file lets a query use the collection's indexes instead, under one contract that the
// helpdesk keeps: a field that is part of an index holds scalars of one BSON type (never arrays or
// documents). The handler still re-applies the whole filter, sort, skip and limit to what comes back, so
// a pushed-down query can only return fewer rows than MongoDB would if that contract is broken; it never
// returns wrong ones.

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/FerretDB/FerretDB/internal/backends"
	"github.com/FerretDB/FerretDB/internal/backends/sqlite/metadata"
	"github.com/FerretDB/FerretDB/internal/handler/sjson"
	"github.com/FerretDB/FerretDB/internal/types"
	"github.com/FerretDB/FerretDB/internal/util/fsql"
	"github.com/FerretDB/FerretDB/internal/util/lazyerrors"
	"github.com/FerretDB/FerretDB/internal/util/must"
)

// helpdeskPlan is what can be pushed down for one query.
type helpdeskPlan struct {
	where string
	args  []any
	order string
	limit int64
	exact bool     // the WHERE clause is the whole filter: counts and limits are safe
	keep  []string // top-level fields FerretDB decodes (helpdeskSlim; projection pushdown); nil for all
}

// sqlArg converts a scalar filter value into the SQL value that HelpdeskFieldExpr yields for it.
func sqlArg(field string, v any) (any, bool) {
	if field == "_id" {
		switch v.(type) {
		case string, types.ObjectID:
			return string(must.NotFail(sjson.MarshalSingleValue(v))), true
		}

		return nil, false
	}

	switch v := v.(type) {
	case string:
		return v, true
	case int32:
		return int64(v), true
	case int64:
		return v, true
	case float64:
		if v != v { // NaN
			return nil, false
		}

		return v, true
	case bool:
		if v {
			return int64(1), true
		}

		return int64(0), true
	case time.Time:
		return v.UnixMilli(), true
	case types.ObjectID:
		return fmt.Sprintf("%x", v[:]), true
	}

	return nil, false
}

// predicate returns the SQL condition for one top-level filter key, or false if it cannot be pushed down.
func predicate(field string, v any) (string, []any, bool) {
	expr := metadata.HelpdeskFieldExpr(field)

	if _, isNull := v.(types.NullType); isNull {
		if field == "_id" {
			return "", nil, false
		}

		return expr + " IS NULL", nil, true
	}

	doc, isDoc := v.(*types.Document)
	if !isDoc {
		a, ok := sqlArg(field, v)
		if !ok {
			return "", nil, false
		}

		return expr + " = ?", []any{a}, true
	}

	if doc.Len() == 0 {
		return "", nil, false
	}

	var conds []string
	var args []any

	for _, op := range doc.Keys() {
		val := must.NotFail(doc.Get(op))

		switch op {
		case "$eq":
			c, a, ok := predicate(field, val)
			if !ok {
				return "", nil, false
			}

			conds = append(conds, c)
			args = append(args, a...)

		case "$in":
			arr, ok := val.(*types.Array)
			if !ok || arr.Len() == 0 || arr.Len() > 500 {
				return "", nil, false
			}

			var marks []string
			var inArgs []any
			withNull := false

			for i := 0; i < arr.Len(); i++ {
				item := must.NotFail(arr.Get(i))
				if _, isNull := item.(types.NullType); isNull && field != "_id" {
					withNull = true
					continue
				}

				a, ok := sqlArg(field, item)
				if !ok {
					return "", nil, false
				}

				marks = append(marks, "?")
				inArgs = append(inArgs, a)
			}

			var parts []string
			if len(marks) > 0 {
				parts = append(parts, expr+" IN ("+strings.Join(marks, ", ")+")")
			}

			if withNull {
				parts = append(parts, expr+" IS NULL")
			}

			conds = append(conds, "("+strings.Join(parts, " OR ")+")")
			args = append(args, inArgs...)

		case "$gt", "$gte", "$lt", "$lte":
			if field == "_id" {
				return "", nil, false
			}

			a, ok := sqlArg(field, val)
			if !ok {
				return "", nil, false
			}

			sqlOp := map[string]string{"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}[op]
			conds = append(conds, expr+" "+sqlOp+" ?")
			args = append(args, a)

		default:
			return "", nil, false
		}
	}

	return strings.Join(conds, " AND "), args, true
}

// indexFields returns the fields of every index of the collection.
func indexFields(meta *metadata.Collection) [][]string {
	res := make([][]string, 0, len(meta.Settings.Indexes))

	for _, idx := range meta.Settings.Indexes {
		fields := make([]string, len(idx.Key))
		for i, k := range idx.Key {
			fields[i] = k.Field
		}

		res = append(res, fields)
	}

	return res
}

// helpdeskPushdown plans the query; ok is false when nothing beyond FerretDB's own pushdown applies.
func helpdeskPushdown(meta *metadata.Collection, params *backends.QueryParams) (*helpdeskPlan, bool) {
	filter := params.IndexFilter
	if filter == nil && params.CountOnly {
		filter = types.MakeDocument(0) // count of the whole collection
	}

	if meta.Capped() || params.OnlyRecordIDs || filter == nil {
		return nil, false
	}

	type cond struct {
		key  string
		sql  string
		args []any
	}

	var pushable []cond
	allPushable := true

	for _, key := range filter.Keys() {
		if strings.HasPrefix(key, "$") {
			if key == "$comment" {
				continue
			}

			allPushable = false

			continue
		}

		sql, args, ok := predicate(key, must.NotFail(filter.Get(key)))
		if !ok {
			allPushable = false
			continue
		}

		pushable = append(pushable, cond{key, sql, args})
	}

	var sortKeys []string
	var sortDirs []int64
	sortOK := params.IndexSort != nil && params.IndexSort.Len() > 0

	if params.IndexSort != nil {
		for _, k := range params.IndexSort.Keys() {
			d, isInt := must.NotFail(params.IndexSort.Get(k)).(int64)
			if strings.HasPrefix(k, "$") || !isInt {
				sortOK = false
				break
			}

			sortKeys = append(sortKeys, k)
			sortDirs = append(sortDirs, d)
		}
	}

	// choose the index covering the most pushable keys (and all sort keys, if any index does)
	best, bestCovered, bestSorts := []string(nil), -1, false

	for _, fields := range indexFields(meta) {
		covered := 0
		for _, c := range pushable {
			if c.key == "_id" || slices.Contains(fields, c.key) {
				covered++
			}
		}

		sorts := sortOK
		for _, k := range sortKeys {
			sorts = sorts && slices.Contains(fields, k)
		}

		if covered > bestCovered || (covered == bestCovered && sorts && !bestSorts) {
			best, bestCovered, bestSorts = fields, covered, sorts
		}
	}

	if len(pushable) == 0 && allPushable && params.CountOnly {
		return &helpdeskPlan{exact: true}, true // count of the whole collection
	}

	if bestCovered <= 0 && !(bestSorts && len(pushable) == 0 && allPushable) {
		return nil, false
	}

	plan := &helpdeskPlan{exact: allPushable && bestCovered == len(pushable)}

	var conds []string
	for _, c := range pushable {
		if c.key == "_id" || slices.Contains(best, c.key) {
			conds = append(conds, c.sql)
			plan.args = append(plan.args, c.args...)
		}
	}

	if len(conds) > 0 {
		plan.where = " WHERE " + strings.Join(conds, " AND ")
	}

	if plan.exact && bestSorts {
		order := make([]string, len(sortKeys))
		for i, k := range sortKeys {
			order[i] = metadata.HelpdeskFieldExpr(k)
			if sortDirs[i] < 0 {
				order[i] += " DESC"
			}
		}

		plan.order = " ORDER BY " + strings.Join(order, ", ")

		if params.IndexLimit > 0 {
			plan.limit = params.IndexLimit
		}
	}

	if plan.exact && len(sortKeys) == 0 && params.IndexLimit > 0 {
		plan.limit = params.IndexLimit
	}

	plan.keep = projectionKeys(params.IndexProjection, filter, sortKeys)

	return plan, true
}

// projectionKeys returns the top-level fields an inclusion projection needs, with every filter and sort
// field (the handler re-applies filter, sort and projection to what SQLite returns), or nil.
func projectionKeys(projection, filter *types.Document, sortKeys []string) []string {
	if projection == nil || projection.Len() == 0 {
		return nil
	}

	keep := []string{"_id"}
	add := func(field string) {
		top := strings.SplitN(field, ".", 2)[0]
		if !slices.Contains(keep, top) {
			keep = append(keep, top)
		}
	}

	for _, k := range projection.Keys() {
		v := must.NotFail(projection.Get(k))
		included := false

		switch v := v.(type) {
		case bool:
			included = v
		case int32:
			included = v != 0
		case int64:
			included = v != 0
		case float64:
			included = v != 0
		}

		if k == "_id" && !included {
			continue
		}

		if !included || !plainName(k) {
			return nil // exclusions and operators: read whole documents
		}

		add(k)
	}

	for _, k := range filter.Keys() {
		if !plainName(k) {
			return nil
		}

		add(k)
	}

	for _, k := range sortKeys {
		if !plainName(k) {
			return nil
		}

		add(k)
	}

	return keep
}

// plainName tells whether a (dotted) field name is written in sjson text exactly as it is: ASCII letters,
// digits, "_", "-" and ".", never an operator or anything the encoder escapes.
func plainName(name string) bool {
	if name == "" {
		return false
	}

	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.') {
			return false
		}
	}

	return true
}

// helpdeskSlim returns the sjson text of a stored document with only the top-level fields in keep (values,
// their schema entries and their place in "$k"), so that FerretDB decodes a list row's dozen fields rather
// than a whole ticket with its conversation. It only walks the text: values are copied as they are, never
// parsed. On anything it does not expect it returns the document unchanged (the handler then projects the
// whole document itself, as without the pushdown).
func helpdeskSlim(b []byte, keep []string) []byte {
	if len(keep) == 0 {
		return b
	}

	out, ok := slimDocument(b, keep)
	if !ok {
		return b
	}

	return out
}

func slimDocument(b []byte, keep []string) ([]byte, bool) {
	var schema, order, values []byte
	var sawSchema bool

	ok := eachMember(b, func(key, value []byte) bool {
		if string(key) == `"$s"` {
			sawSchema = true

			return eachMember(value, func(k, v []byte) bool {
				switch string(k) {
				case `"p"`:
					return eachMember(v, func(field, entry []byte) bool {
						if kept(field, keep) {
							schema = appendMember(schema, field, entry)
						}

						return true
					})
				case `"$k"`:
					return eachElement(v, func(field []byte) bool {
						if kept(field, keep) {
							if len(order) > 0 {
								order = append(order, ',')
							}

							order = append(order, field...)
						}

						return true
					})
				}

				return false // a schema member this code does not know
			})
		}

		if kept(key, keep) {
			values = appendMember(values, key, value)
		}

		return true
	})
	if !ok || !sawSchema {
		return nil, false
	}

	out := make([]byte, 0, len(schema)+len(order)+len(values)+24)
	out = append(out, `{"$s":{"p":{`...)
	out = append(out, schema...)
	out = append(out, `},"$k":[`...)
	out = append(out, order...)
	out = append(out, `]}`...)

	if len(values) > 0 {
		out = append(out, ',')
		out = append(out, values...)
	}

	return append(out, '}'), true
}

// kept tells whether a JSON string token (with its quotes) is one of keep, compared as written: a key that
// the encoder escaped never matches, which is why projectionKeys passes only plain ASCII names.
func kept(token []byte, keep []string) bool {
	if len(token) < 2 || token[0] != '"' {
		return false
	}

	name := token[1 : len(token)-1]
	for _, k := range keep {
		if string(name) == k {
			return true
		}
	}

	return false
}

func appendMember(dst, key, value []byte) []byte {
	if len(dst) > 0 {
		dst = append(dst, ',')
	}

	dst = append(dst, key...)
	dst = append(dst, ':')

	return append(dst, value...)
}

// eachMember calls f with the key token (quotes included) and the value text of each member of the JSON
// object b; false if b is not one object or f says stop.
func eachMember(b []byte, f func(key, value []byte) bool) bool {
	return eachItem(b, '{', '}', func(i int) (int, bool) {
		keyEnd, ok := skipString(b, i)
		if !ok {
			return 0, false
		}

		colon := skipSpace(b, keyEnd)
		if colon >= len(b) || b[colon] != ':' {
			return 0, false
		}

		start := skipSpace(b, colon+1)

		end, ok := skipValue(b, start)

		return end, ok && f(b[i:keyEnd], b[start:end])
	})
}

// eachElement calls f with each element of the JSON array b that is a string (token with quotes); false if
// b is not one array of strings or f says stop.
func eachElement(b []byte, f func(item []byte) bool) bool {
	return eachItem(b, '[', ']', func(i int) (int, bool) {
		end, ok := skipString(b, i)

		return end, ok && f(b[i:end])
	})
}

// eachItem walks the JSON object or array b (opened by opening, closed by closing), calling item with the index
// of each member or element; item returns the index after it, or false to stop. False if b is not one
// well-formed object or array, or item stopped.
func eachItem(b []byte, opening, closing byte, item func(i int) (int, bool)) bool {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != opening {
		return false
	}

	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == closing {
		return skipSpace(b, i+1) == len(b)
	}

	for i < len(b) {
		end, ok := item(i)
		if !ok {
			return false
		}

		i = skipSpace(b, end)
		if i >= len(b) {
			return false
		}

		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case closing:
			return skipSpace(b, i+1) == len(b)
		default:
			return false
		}
	}

	return false
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}

	return i
}

// skipString returns the index after the JSON string starting at b[i].
func skipString(b []byte, i int) (int, bool) {
	if i >= len(b) || b[i] != '"' {
		return 0, false
	}

	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1, true
		}
	}

	return 0, false
}

// skipValue returns the index after the JSON value starting at b[i] (strings, objects and arrays are
// matched with their nesting; other scalars end at the next delimiter).
func skipValue(b []byte, i int) (int, bool) {
	if i >= len(b) {
		return 0, false
	}

	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				end, ok := skipString(b, i)
				if !ok {
					return 0, false
				}

				i = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1, true
				}
			}
		}

		return 0, false
	}

	start := i
	for i < len(b) && !strings.ContainsRune(",}] \t\n\r", rune(b[i])) {
		i++
	}

	return i, i > start
}

// helpdeskCount counts the rows of an exact plan with SQLite, without reading any document.
func (c *collection) helpdeskCount(ctx context.Context, db *fsql.DB, table string, plan *helpdeskPlan) (int64, error) {
	var n int64
	q := fmt.Sprintf(`SELECT count(*) FROM %q`, table) + plan.where
	if err := db.QueryRowContext(ctx, q, plan.args...).Scan(&n); err != nil {
		return 0, lazyerrors.Error(err)
	}

	return n, nil
}

// helpdeskApply replaces FerretDB's WHERE clause by the plan's (with ORDER BY and LIMIT where exact), or
// answers a count-only query outright (done is then non-nil). keep is what the rows read may be slimmed to
// (helpdeskSlim) before FerretDB decodes them; nil for whole documents.
func (c *collection) helpdeskApply(
	ctx context.Context, db *fsql.DB, meta *metadata.Collection, params *backends.QueryParams,
	q, where string, args []any,
) (string, string, []any, []string, *backends.QueryResult, error) {
	plan, ok := helpdeskPushdown(meta, params)
	if !ok {
		return q, where, args, nil, nil, nil
	}

	if params.CountOnly && plan.exact {
		n, err := c.helpdeskCount(ctx, db, meta.TableName, plan)
		if err != nil {
			return "", "", nil, nil, nil, err
		}

		res := &backends.QueryResult{Iter: newQueryIterator(ctx, nil, false), Count: n, Counted: true}

		return "", "", nil, nil, res, nil
	}

	args = plan.args
	where = plan.where
	if plan.order != "" && params.Sort.Len() == 0 {
		where += plan.order
	}

	if plan.limit > 0 && params.Limit == 0 {
		where += ` LIMIT ?`
		args = append(args, plan.limit)
	}

	if params.OnlyRecordIDs {
		return q, where, args, nil, nil, nil
	}

	return q, where, args, plan.keep, nil, nil
}
