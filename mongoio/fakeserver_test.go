package mongoio_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// fakeServer speaks just enough of the MongoDB wire protocol for the sink:
// the handshake, buildInfo, and insert and update commands, whose replies
// a test scripts per collection. It records every write command and how
// many ran at once, which a real server cannot tell.
type fakeServer struct {
	ln net.Listener
	// ferretDB makes buildInfo report a FerretDB version.
	ferretDB bool
	// delay is how long each write command takes.
	delay time.Duration
	// hang makes write commands never answer (until the test ends): a
	// server that accepts connections and commands but is stuck.
	hang bool
	stop chan struct{} // closed when the test ends
	// reply, when set, may return the reply to a write command instead of
	// the default: every write applied (an update upserts every document).
	// attempt counts the commands of that kind on that collection, from 1.
	reply func(cmd, coll string, attempt int, docs []bson.Raw) bson.D
	// find, when set, returns the stored documents of a collection among
	// the _ids of a find {_id: {$in: ids}}, or an error reply; by default
	// none are stored.
	find func(coll string, ids []bson.RawValue) ([]bson.Raw, bson.D)

	mu          sync.Mutex
	calls       []fakeCall
	attempts    map[string]int // by cmd + " " + coll
	inFlight    map[string]int // by cmd
	maxInFlight map[string]int // by cmd
	conns       sync.WaitGroup
}

// fakeCall is one write command received.
type fakeCall struct {
	Cmd, Coll string
	N         int
}

func startFakeServer(t *testing.T, f *fakeServer) *mongo.Database {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.ln = ln
	f.attempts = map[string]int{}
	f.inFlight = map[string]int{}
	f.maxInFlight = map[string]int{}
	f.stop = make(chan struct{})
	var open sync.Map // net.Conn -> struct{}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			open.Store(c, struct{}{})
			f.conns.Add(1)
			go func() {
				defer f.conns.Done()
				defer open.Delete(c)
				f.serve(c)
			}()
		}
	}()
	client, err := mongo.Connect(options.Client().ApplyURI("mongodb://" + ln.Addr().String() + "/?directConnection=true").
		SetServerSelectionTimeout(2 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		close(f.stop)
		_ = client.Disconnect(context.Background())
		_ = ln.Close()
		open.Range(func(c, _ any) bool { _ = c.(net.Conn).Close(); return true })
		f.conns.Wait()
	})
	return client.Database("btc")
}

// Calls returns the write commands received so far.
func (f *fakeServer) Calls() []fakeCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeCall(nil), f.calls...)
}

// ResetMaxInFlight forgets how many commands ran at once.
func (f *fakeServer) ResetMaxInFlight() {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.maxInFlight)
}

// MaxInFlight returns the most commands of a kind that ran at once.
func (f *fakeServer) MaxInFlight(cmd string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.maxInFlight[cmd]
}

const (
	opReply = 1
	opQuery = 2004
	opMsg   = 2013
)

func (f *fakeServer) serve(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	for {
		var hdr [16]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return
		}
		size := int(binary.LittleEndian.Uint32(hdr[0:]))
		reqID := binary.LittleEndian.Uint32(hdr[4:])
		op := binary.LittleEndian.Uint32(hdr[12:])
		body := make([]byte, size-16)
		if _, err := io.ReadFull(r, body); err != nil {
			return
		}
		switch op {
		case opQuery: // the first handshake: flags, collection, skip, limit, query
			i := 4
			for body[i] != 0 {
				i++
			}
			reply, err := bson.Marshal(f.hello())
			if err != nil {
				panic(err)
			}
			out := make([]byte, 36, 36+len(reply))
			binary.LittleEndian.PutUint32(out[0:], uint32(36+len(reply)))
			binary.LittleEndian.PutUint32(out[8:], reqID)
			binary.LittleEndian.PutUint32(out[12:], opReply)
			binary.LittleEndian.PutUint32(out[32:], 1) // numberReturned
			if _, err := c.Write(append(out, reply...)); err != nil {
				return
			}
		case opMsg:
			cmd, seqs := parseOpMsg(body[4:])
			reply := f.command(cmd, seqs)
			if reply == nil { // drop the connection, as a crashed server would
				return
			}
			doc, err := bson.Marshal(reply)
			if err != nil {
				panic(err)
			}
			out := make([]byte, 21, 21+len(doc))
			binary.LittleEndian.PutUint32(out[0:], uint32(21+len(doc)))
			binary.LittleEndian.PutUint32(out[8:], reqID)
			binary.LittleEndian.PutUint32(out[12:], opMsg)
			if _, err := c.Write(append(out, doc...)); err != nil {
				return
			}
		default:
			return
		}
	}
}

// parseOpMsg returns the command document of an OP_MSG and its document
// sequences by identifier.
func parseOpMsg(b []byte) (bson.Raw, map[string][]bson.Raw) {
	var cmd bson.Raw
	seqs := map[string][]bson.Raw{}
	for len(b) > 0 {
		kind := b[0]
		b = b[1:]
		n := int(binary.LittleEndian.Uint32(b))
		switch kind {
		case 0:
			cmd = bson.Raw(b[:n])
		case 1:
			sec := b[4:n]
			i := 0
			for sec[i] != 0 {
				i++
			}
			id := string(sec[:i])
			for docs := sec[i+1:]; len(docs) > 0; {
				m := int(binary.LittleEndian.Uint32(docs))
				seqs[id] = append(seqs[id], bson.Raw(docs[:m]))
				docs = docs[m:]
			}
		}
		b = b[n:]
	}
	return cmd, seqs
}

func (f *fakeServer) hello() bson.D {
	return bson.D{
		{Key: "helloOk", Value: true}, {Key: "ismaster", Value: true}, {Key: "isWritablePrimary", Value: true},
		{Key: "maxBsonObjectSize", Value: int32(16 << 20)}, {Key: "maxMessageSizeBytes", Value: int32(48_000_000)},
		{Key: "maxWriteBatchSize", Value: int32(100_000)}, {Key: "localTime", Value: time.Now()},
		{Key: "minWireVersion", Value: int32(0)}, {Key: "maxWireVersion", Value: int32(21)},
		{Key: "ok", Value: 1.0},
	}
}

func (f *fakeServer) command(cmd bson.Raw, seqs map[string][]bson.Raw) bson.D {
	elems, err := cmd.Elements()
	if err != nil || len(elems) == 0 {
		return bson.D{{Key: "ok", Value: 0.0}, {Key: "errmsg", Value: "bad command"}}
	}
	name := elems[0].Key()
	switch name {
	case "hello", "isMaster", "ismaster":
		return f.hello()
	case "buildInfo", "buildinfo":
		info := bson.D{{Key: "version", Value: "7.0.0"}, {Key: "ok", Value: 1.0}}
		if f.ferretDB {
			info = append(info, bson.E{Key: "ferretdbVersion", Value: "v1.24.2"})
		}
		return info
	case "insert", "update":
	case "find":
		return f.findCommand(cmd)
	default:
		return bson.D{{Key: "ok", Value: 1.0}}
	}
	coll := elems[0].Value().StringValue()
	docs := seqs["documents"]
	if name == "update" {
		docs = seqs["updates"]
	}

	f.mu.Lock()
	f.calls = append(f.calls, fakeCall{Cmd: name, Coll: coll, N: len(docs)})
	f.attempts[name+" "+coll]++
	attempt := f.attempts[name+" "+coll]
	f.inFlight[name]++
	f.maxInFlight[name] = max(f.maxInFlight[name], f.inFlight[name])
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.inFlight[name]--
		f.mu.Unlock()
	}()
	time.Sleep(f.delay)
	if f.hang {
		<-f.stop
		return nil
	}

	if f.reply != nil {
		if r := f.reply(name, coll, attempt, docs); r != nil {
			if r[0].Key == "$drop" {
				return nil
			}
			return r
		}
	}
	if name == "insert" {
		return bson.D{{Key: "n", Value: int32(len(docs))}, {Key: "ok", Value: 1.0}}
	}
	upserted := bson.A{}
	for i, u := range docs {
		upserted = append(upserted, bson.D{{Key: "index", Value: int32(i)}, {Key: "_id", Value: u.Lookup("q", "_id")}})
	}
	return bson.D{{Key: "n", Value: int32(len(docs))}, {Key: "nModified", Value: int32(0)},
		{Key: "upserted", Value: upserted}, {Key: "ok", Value: 1.0}}
}

// findCommand answers a find {_id: {$in: ids}} with f.find and records it
// as a call with N the number of _ids.
func (f *fakeServer) findCommand(cmd bson.Raw) bson.D {
	coll := cmd.Index(0).Value().StringValue()
	in, err := cmd.LookupErr("filter", "_id", "$in")
	if err != nil {
		return bson.D{{Key: "ok", Value: 0.0}, {Key: "code", Value: int32(2)}, {Key: "errmsg", Value: "fake: unexpected filter"}}
	}
	vals, err := in.Array().Values()
	if err != nil {
		panic(err)
	}
	f.mu.Lock()
	f.calls = append(f.calls, fakeCall{Cmd: "find", Coll: coll, N: len(vals)})
	find := f.find
	f.mu.Unlock()
	docs := bson.A{}
	if find != nil {
		found, errReply := find(coll, vals)
		if errReply != nil {
			return errReply
		}
		for _, d := range found {
			docs = append(docs, d)
		}
	}
	return bson.D{{Key: "cursor", Value: bson.D{
		{Key: "id", Value: int64(0)}, {Key: "ns", Value: "btc." + coll}, {Key: "firstBatch", Value: docs},
	}}, {Key: "ok", Value: 1.0}}
}

// duplicates is the reply of a FerretDB insert that finds every _id taken.
func duplicates(docs []bson.Raw) bson.D {
	errs := bson.A{}
	for i := range docs {
		errs = append(errs, bson.D{{Key: "index", Value: int32(i)}, {Key: "code", Value: int32(11000)},
			{Key: "errmsg", Value: "E11000 duplicate key error collection: btc.c"}})
	}
	return bson.D{{Key: "n", Value: int32(0)}, {Key: "writeErrors", Value: errs}, {Key: "ok", Value: 1.0}}
}

// errShutdown is a transient command error (ShutdownInProgress).
var errShutdown = bson.D{{Key: "ok", Value: 0.0}, {Key: "code", Value: int32(91)},
	{Key: "codeName", Value: "ShutdownInProgress"}, {Key: "errmsg", Value: "shutting down"}}

// errUnauthorized is a command error that is not transient.
var errUnauthorized = bson.D{{Key: "ok", Value: 0.0}, {Key: "code", Value: int32(13)},
	{Key: "codeName", Value: "Unauthorized"}, {Key: "errmsg", Value: "not authorized"}}

// callCounts counts the write commands and documents by command and
// collection.
func callCounts(calls []fakeCall) (commands, docs map[string]int) {
	commands, docs = map[string]int{}, map[string]int{}
	for _, c := range calls {
		k := fmt.Sprintf("%s %s", c.Cmd, c.Coll)
		commands[k]++
		docs[k] += c.N
	}
	return commands, docs
}

// dropConnection, returned by fakeServer.reply, makes the server close
// the connection instead of replying: a network error for the client.
var dropConnection = bson.D{{Key: "$drop", Value: true}}
