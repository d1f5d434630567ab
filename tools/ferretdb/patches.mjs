// Fixes applied to FerretDB 1.24.2 before it is built (scripts/provision.mjs); none changes what a
// query returns. The first three make it look documents up by `_id` the way MongoDB does, through the
// `_id` index (an equality, or `$in` a list); the next narrows other queries by their top-level string
// equalities in SQL; then write transactions queue in Go instead of in SQLite's busy handler; an update
// of many documents writes them 100 to a transaction instead of one; an ordered insert stops at its
// first refused document; and SQL statements are no longer formatted for a debug log nobody reads.
// Measured on 1,100 account documents: a fenced update `{_id, node, epoch}` 45 ms → 1.3 ms alone;
// 50 at once p99 1.9 s → 120–130 ms (index) → 36–49 ms (queue); 50 inserts at once p99 94–104 ms →
// 35 ms (queue).
export const FERRETDB_PATCHES = [
  {
    file: "internal/backends/sqlite/metadata/metadata.go",
    why:
      'the `_id` index is built on `_ferretdb_sjson->"_id"`, but lookups compared ' +
      "`_ferretdb_sjson->'$._id'`: the same value, another expression, so SQLite never used the index " +
      "and every lookup by `_id` scanned the table",
    find: `IDColumn = DefaultColumn + "->'$._id'"`,
    replace: 'IDColumn = DefaultColumn + `->"_id"`',
    count: 1,
  },
  {
    file: "internal/backends/sqlite/collection.go",
    why:
      "only a filter of `_id` alone was narrowed in SQL; any other (`{_id, node, epoch}`, every fenced " +
      "write) decoded and matched the whole collection in Go. Narrowing by the `_id` equality is exact " +
      "whatever else the filter holds: every handler (find, update, delete, findAndModify, count, " +
      "distinct) still applies the whole filter to what comes back",
    find: "if params.Filter.Len() == 1 {",
    replace: "if hasOneID(params.Filter) {",
    count: 2, // Query and Explain
    append: `
// hasOneID tells whether the filter names _id exactly once (added by Switchboard's build).
func hasOneID(filter *types.Document) bool {
	n := 0
	for _, k := range filter.Keys() {
		if k == "_id" {
			n++
		}
	}
	return n == 1
}
`,
  },
  {
    file: "internal/backends/sqlite/collection.go",
    why:
      "`{_id: {$in: [...]}}` (a batch of rows marked at once) scanned the collection; it now reads those " +
      "rows by the `_id` index, as MongoDB does. The handler still applies the whole filter",
    find:
      "\t\tcase string, types.ObjectID:\n" +
      "\t\t\twhereClause = fmt.Sprintf(` WHERE %s = ?`, metadata.IDColumn)\n" +
      "\t\t\targs = []any{string(must.NotFail(sjson.MarshalSingleValue(v)))}\n" +
      "\t\t}\n",
    replace:
      "\t\tcase string, types.ObjectID:\n" +
      "\t\t\twhereClause = fmt.Sprintf(` WHERE %s = ?`, metadata.IDColumn)\n" +
      "\t\t\targs = []any{string(must.NotFail(sjson.MarshalSingleValue(v)))}\n" +
      "\t\tcase *types.Document:\n" +
      "\t\t\twhereClause, args = idInClause(v.(*types.Document))\n" +
      "\t\t}\n",
    count: 1, // Query; Explain below
    append: `
// idInClause narrows {$in: [strings or ObjectIDs]} on _id to those rows; "" for anything else (added by
// Switchboard's build).
func idInClause(v *types.Document) (string, []any) {
	if v.Len() != 1 {
		return "", nil
	}
	in, err := v.Get("$in")
	if err != nil {
		return "", nil
	}
	arr, ok := in.(*types.Array)
	if !ok || arr.Len() == 0 || arr.Len() > 1000 {
		return "", nil
	}
	args := make([]any, 0, arr.Len())
	marks := make([]string, 0, arr.Len())
	for i := 0; i < arr.Len(); i++ {
		el := must.NotFail(arr.Get(i))
		switch el.(type) {
		case string, types.ObjectID:
		default:
			return "", nil
		}
		args = append(args, string(must.NotFail(sjson.MarshalSingleValue(el))))
		marks = append(marks, "?")
	}
	return fmt.Sprintf(\` WHERE %s IN (%s)\`, metadata.IDColumn, strings.Join(marks, ", ")), args
}
`,
  },
  {
    file: "internal/backends/sqlite/collection.go",
    why: "explain reports the `$in` narrowing as it is done",
    find:
      "\t\tcase string, types.ObjectID:\n" +
      "\t\t\tfilterPushdown = true\n" +
      "\t\t\twhereClause = fmt.Sprintf(` WHERE %s = ?`, metadata.IDColumn)\n" +
      "\t\t\targs = []any{string(must.NotFail(sjson.MarshalSingleValue(v)))}\n" +
      "\t\t}\n",
    replace:
      "\t\tcase string, types.ObjectID:\n" +
      "\t\t\tfilterPushdown = true\n" +
      "\t\t\twhereClause = fmt.Sprintf(` WHERE %s = ?`, metadata.IDColumn)\n" +
      "\t\t\targs = []any{string(must.NotFail(sjson.MarshalSingleValue(v)))}\n" +
      "\t\tcase *types.Document:\n" +
      "\t\t\twhereClause, args = idInClause(v.(*types.Document))\n" +
      '\t\t\tfilterPushdown = whereClause != ""\n' +
      "\t\t}\n",
    count: 1,
  },
  // Any other filter was matched in Go against every document of the collection, each decoded from
  // its JSON first: the webhooks outbox's scan for `{status: "pending"}` cost FerretDB 0.8 CPU-seconds
  // at 4,000 rows, ~0.2 ms a row. Its top-level string equalities now narrow the rows in SQL first, and
  // a string JSON writes as it is is tested on the expression FerretDB's indexes are built on, so SQLite
  // searches an index on the field: the pending scan at 20,000 rows kept 0.17–0.19 → ≤ 0.01 CPU-seconds.
  {
    file: "internal/backends/sqlite/collection.go",
    why:
      'a query\'s top-level string equalities (`{status: "pending", endpointId: …}`) select its rows in ' +
      "SQL: those whose field is that string, or an array (MongoDB's equality also matches an array " +
      "holding the value). A superset of the answer: the handler still applies the whole filter",
    find: "\t}\n\n\tq += whereClause\n",
    replace:
      "\t}\n\n" +
      '\tif whereClause == "" {\n' +
      "\t\twhereClause, args = stringEqualityClause(params.Filter)\n" +
      "\t}\n\n" +
      "\tq += whereClause\n",
    count: 1, // Query
    append: `
// stringEqualityClause narrows the filter's top-level {field: "string"} conditions in SQL: a row is kept
// when the field holds that string or an array; "" when the filter has none (added by Switchboard's
// build). Only plain field names are narrowed (see plainFieldName): not dotted paths nor operators.
func stringEqualityClause(filter *types.Document) (string, []any) {
	var conds []string
	var args []any
	for _, k := range filter.Keys() {
		if !plainFieldName(k) {
			continue
		}
		v, _ := filter.Get(k)
		s, ok := v.(string)
		if !ok {
			continue
		}
		if plainString(s) {
			// The expression an index on the field is built on (metadata.Registry.IndexesCreate), so
			// SQLite can search that index: the field's JSON text, which for such a string is the string
			// in quotes, and for an array starts with '[' (the texts from '[' up to '\\' exclusive).
			conds = append(conds, fmt.Sprintf(
				\`(%[1]s->%[2]q = ? OR (%[1]s->%[2]q >= '[' AND %[1]s->%[2]q < '\\'))\`, metadata.DefaultColumn, k,
			))
			args = append(args, \`"\`+s+\`"\`)
			continue
		}
		conds = append(conds, fmt.Sprintf(
			\`(%[1]s->>'$.%[2]s' = ? OR json_type(%[1]s, '$.%[2]s') = 'array')\`, metadata.DefaultColumn, k,
		))
		args = append(args, s)
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

// plainString tells whether s is written in JSON as it is, between quotes: ASCII letters, digits and
// _-.:@/+= only, which no encoder escapes (added by Switchboard's build).
func plainString(s string) bool {
	for _, r := range s {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_-.:@/+=", r)
		if !ok {
			return false
		}
	}
	return true
}

// plainFieldName tells whether k is a field name SQLite's JSON path takes as it is: a letter or _, then
// letters, digits or _ (added by Switchboard's build).
func plainFieldName(k string) bool {
	if k == "" || k == "_id" {
		return false
	}
	for i, r := range k {
		letter := r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z'
		if !letter && (i == 0 || r < '0' || r > '9') {
			return false
		}
	}
	return true
}
`,
  },
  {
    file: "internal/backends/sqlite/collection.go",
    why: "explain shows the plan of the narrowed query (the filter is still applied in Go: no pushdown)",
    find: '\t}\n\n\torderByClause := prepareOrderByClause(params.Sort)\n\tsortPushdown := orderByClause != ""\n',
    replace:
      "\t}\n\n" +
      '\tif whereClause == "" {\n' +
      "\t\twhereClause, args = stringEqualityClause(params.Filter)\n" +
      "\t}\n\n" +
      '\torderByClause := prepareOrderByClause(params.Sort)\n\tsortPushdown := orderByClause != ""\n',
    count: 1, // Explain
  },
  // SQLite has one writer at a time; a writer that finds the database locked polls it, sleeping 1, 2,
  // 5, … up to 100 ms between tries, so under concurrent writes the unlucky ones wait far longer than
  // the queue ahead of them. The write transactions of a database (inserts and updates) now take their
  // turn on a channel first (FIFO, and a cancelled request stops waiting).
  {
    file: "internal/util/fsql/db.go",
    why: "write transactions queue in Go (fair) instead of polling SQLite's lock",
    find: "\tsqlDB     *sql.DB\n",
    replace: "\tsqlDB     *sql.DB\n\twriteTurn chan struct{}\n",
    count: 1,
  },
  {
    file: "internal/util/fsql/db.go",
    why: "the channel is made with the DB",
    find: "\t\tsqlDB:            db,\n",
    replace: "\t\tsqlDB:            db,\n\t\twriteTurn:        make(chan struct{}, 1),\n",
    count: 1,
  },
  {
    file: "internal/util/fsql/db.go",
    why: "InTransaction (used by the SQLite backend's inserts and updates only) waits for its turn",
    find: "func (db *DB) InTransaction(ctx context.Context, f func(*Tx) error) (err error) {\n",
    replace:
      "func (db *DB) InTransaction(ctx context.Context, f func(*Tx) error) (err error) {\n" +
      "\tselect {\n" +
      "\tcase db.writeTurn <- struct{}{}:\n" +
      "\t\tdefer func() { <-db.writeTurn }()\n" +
      "\tcase <-ctx.Done():\n" +
      "\t\treturn lazyerrors.Error(ctx.Err())\n" +
      "\t}\n\n",
    count: 1,
  },
  // An update of many documents (`updateMany`: the webhooks' delivered marks, 500 rows a command) wrote
  // each document in a transaction of its own: a commit per row. Measured in isolation (2,000 outbox
  // rows with their four indexes, marked 500 an `updateMany`): 1.45–1.67 → 0.70–0.72 CPU-seconds.
  {
    file: "internal/handler/common/update.go",
    why: "modified documents are kept until 100 are waiting, then written in one transaction",
    find:
      "\t\t} else if modified {\n" +
      "\t\t\t_, err := c.UpdateAll(ctx, &backends.UpdateAllParams{Docs: []*types.Document{doc}})\n" +
      "\t\t\tif err != nil {\n" +
      "\t\t\t\treturn nil, lazyerrors.Error(err)\n" +
      "\t\t\t}\n",
    replace:
      "\t\t} else if modified {\n" +
      "\t\t\tpending = append(pending, doc)\n" +
      "\t\t\tif len(pending) >= updateBatch {\n" +
      "\t\t\t\tif err = flushUpdates(ctx, c, &pending); err != nil {\n" +
      "\t\t\t\t\treturn nil, err\n" +
      "\t\t\t\t}\n" +
      "\t\t\t}\n",
    count: 1,
    append: `
// updateBatch is how many modified documents one transaction writes at most (added by Switchboard's build).
const updateBatch = 100

// flushUpdates writes the pending documents in one transaction and empties the list (added by
// Switchboard's build).
func flushUpdates(ctx context.Context, c backends.Collection, pending *[]*types.Document) error {
\tif len(*pending) == 0 {
\t\treturn nil
\t}

\tdocs := *pending
\t*pending = nil

\tif _, err := c.UpdateAll(ctx, &backends.UpdateAllParams{Docs: docs}); err != nil {
\t\treturn lazyerrors.Error(err)
\t}

\treturn nil
}
`,
  },
  {
    file: "internal/handler/common/update.go",
    why:
      "what is waiting is written before the update answers, and also when it fails part way (the " +
      "documents before the failing one stay updated, as they did when each was written at once)",
    find: '\tisFindAndModify := (strings.ToLower(cmd) == "findandmodify")\n',
    replace:
      '\tisFindAndModify := (strings.ToLower(cmd) == "findandmodify")\n\n' +
      "\tvar pending []*types.Document\n" +
      "\tdefer func() { _ = flushUpdates(ctx, c, &pending) }()\n",
    count: 1,
  },
  {
    file: "internal/handler/common/update.go",
    why: "the last documents are written before the count of modified ones is answered",
    find: "\t\t\tif !upsert {\n\t\t\t\treturn result, nil\n\t\t\t}\n",
    replace: "\t\t\tif !upsert {\n\t\t\t\treturn result, flushUpdates(ctx, c, &pending)\n\t\t\t}\n",
    count: 1,
  },
  // An ordered insert runs in batches of 100 documents; a batch refused as a whole is inserted again one
  // document at a time, and that loop stopped at a duplicate key, but the batches after it still went
  // in: rows landed past the refused one while the answer said nothing after it had.
  {
    file: "internal/handler/msg_insert.go",
    why: "an ordered insert stops at its first refused document, also across batches",
    find: "\t\t\tif params.Ordered {\n\t\t\t\tbreak\n\t\t\t}\n\t\t}\n\t}\n\n\tres := must.NotFail(",
    replace:
      "\t\t\tif params.Ordered {\n\t\t\t\tbreak\n\t\t\t}\n\t\t}\n\n" +
      "\t\tif params.Ordered && len(writeErrors) > 0 {\n\t\t\tbreak\n\t\t}\n\t}\n\n\tres := must.NotFail(",
    count: 1,
  },
  // Every SQL statement was logged at debug level through `logger.With(args)`, which formats the
  // arguments (whole documents as JSON) at once, before the level is looked at: twice a statement.
  // 8 % of the server's CPU in a webhooks burst; in isolation, 2,000 rows inserted 0.20–0.24 → 0.13–0.17
  // CPU-seconds.
  ...["db", "tx"].flatMap((v) =>
    [">>>", "<<<"].map((arrow) => ({
      file: `internal/util/fsql/${v}.go`,
      why: "a statement is formatted for the debug log only when that level is on",
      find: `\t${v}.l.With(fields...).DebugContext(ctx, fmt.Sprintf("${arrow} %s", query))\n`,
      replace:
        `\tif ${v}.l.Enabled(ctx, slog.LevelDebug) {\n` +
        `\t\t${v}.l.With(fields...).DebugContext(ctx, fmt.Sprintf("${arrow} %s", query))\n` +
        "\t}\n",
      count: 3,
    })),
  ),
];
