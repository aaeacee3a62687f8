// Package netio is spate's network layer: gnet/v2 event loops that accept
// connections, cut the inbound byte stream into size-prefixed frames, hand each
// frame to a Handler, and write the handler's responses back in request order,
// with file regions sent by sendfile(2) so record bytes never pass through Go
// memory.
//
// # What netio owns and what it must not know
//
// netio owns sockets, framing, per-connection request sequencing, response
// ordering, back-pressure, idle expiry, the connection cap and zero-copy writes.
// It knows nothing of Kafka beyond the frame format below: it never decodes a
// request header, never imports another spate package, and never opens a file
// (the files in a FileRegion belong to the storage layer).
//
// # Wire framing
//
// Both directions use the same frame:
//
//	+--------------------+---------------------------+
//	| size int32 (BE)    | size bytes of payload     |
//	+--------------------+---------------------------+
//
// Inbound, a size < 0 or > Config.MaxRequestBytes closes the connection before
// anything is allocated for the frame; the handler never sees it. A frame is
// dispatched only when it is wholly buffered; several frames in one read are all
// dispatched, in order, and the answers given meanwhile leave together. A large frame
// (bigFrameMin and up) is read into a buffer of its exact size as it arrives rather than
// into gnet's ring buffer, within a budget over all connections (frame.go), and its 64 KiB
// chunks are checksummed (CRC-32C) while still cached, for Request.CRC32C (crc.go).
// Outbound, netio writes the 4-byte size prefix itself: a Response's parts are the
// payload only (for Kafka: the response header and body), and netio prefixes their
// total length.
//
// # Requests, sequence numbers and the ordering invariant
//
// Each dispatched frame gets the connection's next sequence number (Request.Seq,
// 0, 1, 2, ...). The handler answers every sequence number exactly once, now or
// later, from any goroutine: Conn.Reply(seq, resp) for a response, or
// Conn.NoReply(seq) for a request that has none (Kafka acks=0 produce).
//
// Invariant: responses leave a connection strictly in sequence order. A reply
// that completes early waits in the connection's ring until every earlier
// sequence number has been answered (replied or NoReply'd); a NoReply only
// stops holding back the responses after it.
//
// Back-pressure: at most Config.MaxInflight requests per connection are
// outstanding (dispatched but not yet answered and written). At the cap netio
// stops dispatching frames from that connection; it resumes when half of them
// have been written. gnet v2.9.7 cannot remove a socket from its poller, so
// while dispatch is paused gnet keeps reading into the connection's inbound
// buffer; if that buffer grows past MaxRequestBytes+4 plus one read (64 KiB) —
// no more than an unpaused connection may hold — the connection is closed.
//
// # Writes: the design choice (option 2 of shared/notes/gnet-sendfile.md)
//
// Every connection owns a duplicate of its socket, wrapped with net.FileConn so
// it sits on Go's own netpoller. Every response of the connection is written
// through that one ordered path; gnet's own write path (Write, AsyncWrite,
// outbound buffer) is never used, so no ordering question between two paths
// can arise.
//
// Writing is done by whoever holds the connection's write token, and there is
// at most one holder:
//
//   - When a reply makes the head of the ring ready and nobody holds the token,
//     the replying goroutine takes it and writes inline: one non-blocking
//     writev(2) of the size prefixes and byte parts of every ready response (up
//     to 1024 iovecs). If the socket takes everything, that is the whole story
//     for small responses: no goroutine, no copy.
//   - The inline writer never waits and never calls sendfile (a sendfile of
//     uncached file pages may block on disk, which must not happen on an event
//     loop). When the socket pushes back (EAGAIN) or the next part is a file
//     region, the token passes to a writer goroutine for that connection, which
//     uses writev for byte parts and sendfile(2) for file regions through
//     syscall.RawConn.Write, so it parks on Go's netpoller until the socket is
//     writable again: no spinning, no copy of file bytes into Go memory, however
//     slow the reader. The goroutine exits when nothing is ready any more.
//
// The event loop never blocks: it only frames, dispatches and, when the handler
// replies synchronously from Serve, makes one non-blocking writev.
//
// If a file is shorter than its region (truncated under us), sendfile comes up
// short and the connection is closed: a client may see a cut-off response,
// never wrong bytes inside a well-framed one.
//
// # Threading rules
//
//   - Handler.Serve, ConnHandler.OnOpen and ConnHandler.OnClose run on the
//     connection's event loop and must not block.
//   - Conn.Context and Conn.SetContext: on the event loop only (inside Serve,
//     OnOpen or OnClose).
//   - Conn.Reply, Conn.NoReply, Conn.Close, Conn.RemoteAddr: any goroutine.
//   - Response.Release: called by netio exactly once per Reply'd response, on
//     whatever goroutine finished with it (the replier's, the writer
//     goroutine's, or the event loop's on close). It must not block.
//   - Server.Stop: any goroutine, once the server has started.
//
// # Buffer lifetimes
//
//   - Request.Frame is a view of the event loop's inbound buffer, and the
//     *Request itself is reused: both, and Request.CRC32C, are valid only during
//     the Serve call. The handler copies what it keeps.
//   - A Response's Parts slice, every Bytes buffer in it, and every FileRegion's
//     File belong to netio from Reply until netio calls Release: the caller must
//     not modify them, reuse them or close the file before then. netio never
//     modifies them, never pools them and drops every reference before Release,
//     so Release is where the caller returns its buffers to a pool and drops the
//     references that keep a segment file and its mapping alive.
//   - Release is called once the response's bytes are in the kernel, or when
//     the connection closes before that (including a Reply to an already
//     closed connection, where Release runs inside Reply).
//
// netio builds only on Linux (gnet, writev and sendfile as used here).
package netio
