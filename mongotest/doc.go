// Package mongotest runs a MongoDB wire-compatible server inside the
// current process, for tests of code that uses MongoDB through the Go
// driver (mongo-driver v2), mongoio's sink or anything else, and for demos
// that should need nothing but Go: FerretDB v1.24 with its SQLite backend,
// embedded.
//
//	func TestLoader(t *testing.T) {
//		srv := mongotest.New(t)
//		client, err := mongo.Connect(options.Client().ApplyURI(srv.URI()))
//		// ...
//	}
//
// It is a module of its own, github.com/tidemark-go/tidemark/mongotest, so
// that FerretDB and the SQL drivers it links (SQLite, PostgreSQL, MySQL, SAP
// HANA) stay out of the dependencies of the library's module.
//
// [Server.Stop], [Server.Start] and [Server.Restart] take the server down
// as a crash would, dropping every connection, and bring it back on the
// same port with its data: a database outage as clients see it. A client
// created before the outage gets a network error on its next operation
// (the driver then clears its connection pool) and reconnects once the
// server is back.
//
// # What FerretDB is
//
// FerretDB translates the MongoDB wire protocol to SQL, here on SQLite files
// in a directory. It supports the CRUD commands, bulk writes, upserts and
// createIndexes (unique indexes included), but not transactions, change
// streams or retryable writes: it reports itself as a standalone server,
// so the driver never retries a write on its own. Bugs of FerretDB v1.24.2
// worth knowing:
//
//   - an update command (a bulk write of updates or replacements) whose
//     statements match 100 existing documents or more hangs for good and
//     wedges that database until the server stops, because each matching
//     statement holds one of the 100 SQLite connections until the command
//     ends; keep such bulk writes to a few dozen writes (mongoio does);
//   - an update command ignores ordered: false: it stops at its first
//     failing statement and reports that failure at index 0;
//   - a createIndexes command that lists several indexes that all exist
//     already panics, and FerretDB drops the connection; creating them one
//     per command works;
//   - every write of an update command is its own SQLite transaction, and
//     an upsert finds its _id by scanning the collection, so bulk upserts
//     run at a few hundred to a few thousand documents per second, slower
//     as the collection grows; inserts are committed a hundred per
//     transaction through the _id index (about 20,000 documents per second
//     on 2 cores).
//
// # What belongs here
//
// Running a MongoDB-compatible server in a test. It is a module of its own
// (github.com/tidemark-go/tidemark/mongotest), so that go get of the
// library never brings FerretDB and its database drivers; FerretDB
// v1.24.2 is the version tested. It also holds the tests of package
// mongoio that need a server (internal/mongoiotest).
//
// # Conventions
//
// They are package stream's, as in the library's packages. Options are
// With* functions, checked by [NewServer], which returns an error wrapping
// [ErrInvalidOption] for a bad one instead of panicking; ErrInvalidOption
// matches [stream.ErrInvalidOption]. Errors callers branch on are the
// sentinels of errors.go. A [Server] is safe for concurrent use.
package mongotest
