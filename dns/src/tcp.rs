//! DNS over TCP, with bounded resources.
//!
//! hickory-server's own TCP listener (`Server::register_listener`) has an idle timeout per
//! connection but no limit on how many connections it holds, and it retries a failed `accept`
//! at once: a client opening connections and leaving them silent would take one file descriptor
//! each until the process has none left, and from then on the accept loop spins (and the UDP
//! side, sharing the process's descriptors, can no longer forward). This module serves TCP
//! itself, in front of the same [`RequestHandler`], with these bounds:
//!
//! * **At most [`TcpLimits::max_connections`] connections** (default
//!   [`MAX_TCP_CONNECTIONS`]). A connection over the limit takes the place of the one that
//!   has been idle longest (waiting for its next query, or in the middle of sending one), which
//!   is closed; when every connection is busy with a query, the new one is closed at once. So
//!   idle connections, however many, never keep a client that sends a query from an answer.
//! * **Idle timeout** ([`TcpLimits::idle_timeout`], default [`crate::TCP_TIMEOUT`]): a
//!   connection must deliver each whole query (its two-byte length and message) within this
//!   time of the previous answer (or of opening), else it is closed. A slow drip of bytes does
//!   not reset it.
//! * **Write timeout**: the same time for an answer to be written; a client that does not read
//!   its answers is closed rather than holding a task.
//! * **One query at a time per connection**, as hickory does: queries a client pipelines are
//!   answered in order, so a single connection cannot start unbounded work.
//! * **accept errors** (out of descriptors, memory) pause the accept loop for
//!   [`ACCEPT_BACKOFF`] instead of retrying in a loop.
//!
//! Messages are at most 65,535 bytes (the length prefix), so a connection buffers at most that.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_server::net::NetError;
use hickory_server::net::runtime::TokioTime;
use hickory_server::net::xfer::Protocol;
use hickory_server::proto::op::{Header, HeaderCounts, MessageType, Metadata, ResponseCode};
use hickory_server::proto::rr::Record;
use hickory_server::proto::serialize::binary::{BinDecodable, BinEncodable, BinEncoder};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponse;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

/// TCP connections the DNS server holds at once. A local emulator's clients are a few
/// resolvers, each needing a connection only for answers too large for UDP; 128 leaves ample
/// room for them while bounding the descriptors (and buffers) a misbehaving client can take.
pub const MAX_TCP_CONNECTIONS: usize = 128;

/// How long the accept loop pauses after `accept` fails (for instance when the process is out
/// of file descriptors), so that it waits for descriptors to come back instead of spinning.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The bounds of the TCP side.
#[derive(Debug, Clone, Copy)]
pub struct TcpLimits {
    pub max_connections: usize,
    pub idle_timeout: Duration,
}

impl Default for TcpLimits {
    fn default() -> TcpLimits {
        TcpLimits {
            max_connections: MAX_TCP_CONNECTIONS,
            idle_timeout: crate::TCP_TIMEOUT,
        }
    }
}

/// Serves DNS over TCP on `listener` with `handler` until `stop` turns true; then every
/// connection is closed.
pub(crate) async fn serve<H: RequestHandler>(
    listener: TcpListener,
    handler: Arc<H>,
    limits: TcpLimits,
    mut stop: watch::Receiver<bool>,
) {
    let slots = Arc::new(Slots::new(limits.max_connections));
    // Dropped on return, which aborts every connection's task (and so closes its socket).
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|stopped| *stopped) => return,
        };
        match accepted {
            Ok((stream, peer)) => match slots.admit() {
                Some(slot) => {
                    let handler = handler.clone();
                    connections.spawn(connection(stream, peer, handler, slot, limits));
                }
                None => {
                    tracing::debug!(%peer, "DNS over TCP: every connection is busy; closing the new one");
                    drop(stream);
                }
            },
            Err(e) => {
                tracing::debug!(error = %e, "DNS over TCP: accept failed; pausing");
                tokio::select! {
                    () = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                    _ = stop.wait_for(|stopped| *stopped) => return,
                }
            }
        }
        // Reap finished connections so the set does not grow with the ones that ended.
        while connections.try_join_next().is_some() {}
    }
}

/// One connection: read a query, answer it, repeat; closed on EOF, error, timeout or eviction.
async fn connection<H: RequestHandler>(
    mut stream: TcpStream,
    peer: SocketAddr,
    handler: Arc<H>,
    slot: Slot,
    limits: TcpLimits,
) {
    loop {
        let read = tokio::select! {
            read = tokio::time::timeout(limits.idle_timeout, read_message(&mut stream)) => read,
            () = slot.evicted.notified() => {
                tracing::debug!(%peer, "DNS over TCP: closing an idle connection to make room");
                return;
            }
        };
        let message = match read {
            Ok(Ok(Some(message))) => message,
            Ok(Ok(None)) => return,
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "DNS over TCP: closing");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "DNS over TCP: idle timeout");
                return;
            }
        };
        slot.set_busy(true);
        if let Some(answer) = answer(handler.as_ref(), message, peer).await {
            let Ok(len) = u16::try_from(answer.len()) else {
                return;
            };
            let write = async {
                stream.write_all(&len.to_be_bytes()).await?;
                stream.write_all(&answer).await?;
                stream.flush().await
            };
            match tokio::time::timeout(limits.idle_timeout, write).await {
                Ok(Ok(())) => {}
                _ => return,
            }
        }
        slot.set_busy(false);
    }
}

/// Reads one length-prefixed message; `None` on a clean EOF before its first byte. A zero
/// length is an error (no DNS message is empty).
async fn read_message(stream: &mut TcpStream) -> std::io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 2];
    match stream.read(&mut len[..1]).await? {
        0 => return Ok(None),
        _ => stream.read_exact(&mut len[1..]).await?,
    };
    let len = usize::from(u16::from_be_bytes(len));
    if len == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "zero-length DNS message",
        ));
    }
    let mut message = vec![0u8; len];
    stream.read_exact(&mut message).await?;
    Ok(Some(message))
}

/// The answer to one message, as hickory's server would give it: FORMERR when only the header
/// parses, nothing for fewer than 12 bytes or for a response (answering one could start a
/// loop between two servers), SERVFAIL when the handler sent nothing.
async fn answer<H: RequestHandler>(
    handler: &H,
    message: Vec<u8>,
    peer: SocketAddr,
) -> Option<Vec<u8>> {
    let header =
        Header::read(&mut hickory_server::proto::serialize::binary::BinDecoder::new(&message))
            .ok()?;
    if header.metadata.message_type == MessageType::Response {
        return None;
    }
    let Ok(request) = Request::from_bytes(message, peer, Protocol::Tcp) else {
        return header_only(&header, ResponseCode::FormErr);
    };
    let capture = Capture::default();
    handler
        .handle_request::<_, TokioTime>(&request, capture.clone())
        .await;
    capture
        .take()
        .or_else(|| header_only(&header, ResponseCode::ServFail))
}

/// A response of only a header, echoing the query's id and opcode.
fn header_only(query: &Header, code: ResponseCode) -> Option<Vec<u8>> {
    let mut metadata = Metadata::new(
        query.metadata.id,
        MessageType::Response,
        query.metadata.op_code,
    );
    metadata.response_code = code;
    metadata.recursion_desired = query.metadata.recursion_desired;
    let header = Header {
        metadata,
        counts: HeaderCounts::default(),
    };
    let mut bytes = Vec::with_capacity(12);
    header.emit(&mut BinEncoder::new(&mut bytes)).ok()?;
    Some(bytes)
}

/// The handler's answer, encoded for TCP (up to 65,535 bytes, no truncation).
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Option<Vec<u8>>>>);

impl Capture {
    fn take(&self) -> Option<Vec<u8>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

#[async_trait::async_trait]
impl ResponseHandler for Capture {
    async fn send_response<'a>(
        &mut self,
        response: MessageResponse<
            '_,
            'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
        >,
    ) -> Result<ResponseInfo, NetError> {
        let mut bytes = Vec::with_capacity(512);
        let mut encoder = BinEncoder::new(&mut bytes);
        encoder.set_max_size(u16::MAX);
        let info = response.destructive_emit(&mut encoder)?;
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(bytes);
        Ok(info)
    }
}

/// The open connections, and which one to close when a new one needs room.
struct Slots {
    max: usize,
    open: Mutex<Open>,
}

#[derive(Default)]
struct Open {
    next_id: u64,
    by_id: HashMap<u64, SlotState>,
}

struct SlotState {
    /// Since when it waits for (the rest of) a query; `None` while a query is being answered.
    idle_since: Option<Instant>,
    evicted: Arc<Notify>,
}

impl Slots {
    fn new(max: usize) -> Slots {
        Slots {
            max: max.max(1),
            open: Mutex::new(Open::default()),
        }
    }

    /// A slot for a new connection: a free one, or the longest-idle connection's (which is
    /// told to close); `None` when all are busy answering.
    fn admit(self: &Arc<Self>) -> Option<Slot> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if open.by_id.len() >= self.max {
            let oldest = open
                .by_id
                .iter()
                .filter_map(|(id, state)| state.idle_since.map(|since| (since, *id)))
                .min()
                .map(|(_, id)| id)?;
            if let Some(state) = open.by_id.remove(&oldest) {
                state.evicted.notify_one();
            }
        }
        let id = open.next_id;
        open.next_id = open.next_id.wrapping_add(1);
        let evicted = Arc::new(Notify::new());
        open.by_id.insert(
            id,
            SlotState {
                idle_since: Some(Instant::now()),
                evicted: evicted.clone(),
            },
        );
        Some(Slot {
            slots: self.clone(),
            id,
            evicted,
        })
    }
}

/// A connection's place among the open ones; given back when the connection ends.
struct Slot {
    slots: Arc<Slots>,
    id: u64,
    evicted: Arc<Notify>,
}

impl Slot {
    fn set_busy(&self, busy: bool) {
        let mut open = self.slots.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(state) = open.by_id.get_mut(&self.id) {
            state.idle_since = if busy { None } else { Some(Instant::now()) };
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.slots.open.lock().unwrap_or_else(|e| e.into_inner());
        open.by_id.remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use hickory_server::net::runtime::Time;
    use hickory_server::proto::op::OpCode;
    use hickory_server::zone_handler::MessageResponseBuilder;

    use super::*;

    /// Answers NOERROR without records; `slow.*` after 400 ms; `mute.*` sends nothing.
    struct TestHandler;

    #[async_trait::async_trait]
    impl RequestHandler for TestHandler {
        async fn handle_request<R: ResponseHandler, T: Time>(
            &self,
            request: &Request,
            mut handle: R,
        ) -> ResponseInfo {
            let name = request
                .queries
                .queries()
                .first()
                .map(|q| q.name().to_string())
                .unwrap_or_default();
            let mut metadata =
                Metadata::new(request.metadata.id, MessageType::Response, OpCode::Query);
            metadata.response_code = ResponseCode::NoError;
            if name.starts_with("mute.") {
                return Header {
                    metadata,
                    counts: HeaderCounts::default(),
                }
                .into();
            }
            if name.starts_with("slow.") {
                tokio::time::sleep(Duration::from_millis(400)).await;
            }
            let response =
                MessageResponseBuilder::new(&request.queries, None).build_no_records(metadata);
            handle.send_response(response).await.expect("answer")
        }
    }

    fn query(id: u16, name: &str) -> Vec<u8> {
        let [hi, lo] = id.to_be_bytes();
        let mut wire = vec![hi, lo, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for label in name.split('.') {
            wire.push(u8::try_from(label.len()).unwrap());
            wire.extend_from_slice(label.as_bytes());
        }
        wire.extend_from_slice(&[0, 0, 1, 0, 1]);
        wire
    }

    fn framed(message: &[u8]) -> Vec<u8> {
        let mut out = u16::try_from(message.len()).unwrap().to_be_bytes().to_vec();
        out.extend_from_slice(message);
        out
    }

    /// Serves TestHandler on a free loopback port; dropping the sender stops it.
    async fn start(
        limits: TcpLimits,
    ) -> (SocketAddr, watch::Sender<bool>, tokio::task::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(serve(listener, Arc::new(TestHandler), limits, stopped));
        (addr, stop, task)
    }

    /// The next answer: (id, rcode), or `None` when the server closed the connection.
    async fn answer_on(stream: &mut TcpStream) -> Option<(u16, u8)> {
        let read = async {
            let mut len = [0u8; 2];
            stream.read_exact(&mut len).await.ok()?;
            let mut message = vec![0u8; usize::from(u16::from_be_bytes(len))];
            stream.read_exact(&mut message).await.ok()?;
            Some((
                u16::from_be_bytes([message[0], message[1]]),
                message[3] & 0x0f,
            ))
        };
        tokio::time::timeout(Duration::from_secs(5), read)
            .await
            .expect("an answer or a close within 5 s")
    }

    /// Whether the server has closed `stream` (EOF or reset seen within `wait`).
    async fn closed(stream: &mut TcpStream, wait: Duration) -> bool {
        let mut byte = [0u8; 1];
        match tokio::time::timeout(wait, stream.read(&mut byte)).await {
            Ok(Ok(0)) | Ok(Err(_)) => true,
            Ok(Ok(_)) => panic!("unexpected data"),
            Err(_) => false,
        }
    }

    fn limits(max_connections: usize, idle_ms: u64) -> TcpLimits {
        TcpLimits {
            max_connections,
            idle_timeout: Duration::from_millis(idle_ms),
        }
    }

    #[tokio::test]
    async fn pipelined_queries_are_answered_in_order_on_one_connection() {
        let (addr, _stop, _task) = start(limits(4, 5_000)).await;
        let mut c = TcpStream::connect(addr).await.unwrap();
        let mut burst = Vec::new();
        for id in [7u16, 8, 9] {
            burst.extend(framed(&query(id, "a.test")));
        }
        c.write_all(&burst).await.unwrap();
        for id in [7u16, 8, 9] {
            assert_eq!(answer_on(&mut c).await, Some((id, 0)));
        }
        c.write_all(&framed(&query(10, "b.test"))).await.unwrap();
        assert_eq!(answer_on(&mut c).await, Some((10, 0)));
    }

    #[tokio::test]
    async fn silent_and_dripping_connections_are_closed_after_the_idle_timeout() {
        let (addr, _stop, _task) = start(limits(8, 300)).await;
        let mut silent = TcpStream::connect(addr).await.unwrap();
        let mut dripping = TcpStream::connect(addr).await.unwrap();
        let mut steady = TcpStream::connect(addr).await.unwrap();
        let started = Instant::now();
        // A query that never completes, one byte at a time every 100 ms.
        let whole = framed(&query(1, "drip.test"));
        for (i, byte) in whole.iter().take(10).enumerate() {
            // (Fails once the server has closed it, which is the point.)
            let _ = dripping.write_all(&[*byte]).await;
            // Meanwhile a client that asks every 100 ms keeps its connection past 300 ms.
            steady
                .write_all(&framed(&query(u16::try_from(i).unwrap(), "s.test")))
                .await
                .unwrap();
            assert!(answer_on(&mut steady).await.is_some(), "round {i}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // A second after the start, 100 ms after the last drip: had each byte restarted the
        // timeout, the dripping connection would still be open.
        assert!(closed(&mut silent, Duration::from_millis(50)).await);
        assert!(closed(&mut dripping, Duration::from_millis(50)).await);
        assert!(started.elapsed() < Duration::from_secs(2));
        steady
            .write_all(&framed(&query(99, "s.test")))
            .await
            .unwrap();
        assert_eq!(answer_on(&mut steady).await, Some((99, 0)));
    }

    #[tokio::test]
    async fn over_the_cap_the_longest_idle_connection_makes_room() {
        let (addr, _stop, _task) = start(limits(4, 10_000)).await;
        let mut idle = Vec::new();
        for _ in 0..4 {
            idle.push(TcpStream::connect(addr).await.unwrap());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // A fifth client that asks: answered, in the place of the first (oldest) idle one.
        let mut asker = TcpStream::connect(addr).await.unwrap();
        asker.write_all(&framed(&query(5, "a.test"))).await.unwrap();
        assert_eq!(answer_on(&mut asker).await, Some((5, 0)));
        assert!(closed(&mut idle[0], Duration::from_millis(500)).await);
        for stream in &mut idle[1..] {
            assert!(!closed(stream, Duration::from_millis(50)).await);
        }
        // A flood of 60 more idle connections: never more than 4 stay open, and the client
        // that asks last is answered all the same.
        for _ in 0..60 {
            idle.push(TcpStream::connect(addr).await.unwrap());
        }
        let mut last = TcpStream::connect(addr).await.unwrap();
        last.write_all(&framed(&query(6, "a.test"))).await.unwrap();
        assert_eq!(answer_on(&mut last).await, Some((6, 0)));
        let mut open = 0;
        for stream in idle.iter_mut().chain([&mut asker]) {
            if !closed(stream, Duration::from_millis(20)).await {
                open += 1;
            }
        }
        assert!(
            open <= 3,
            "{open} connections still open besides the last asker"
        );
    }

    #[tokio::test]
    async fn when_every_connection_is_busy_a_new_one_is_closed() {
        let (addr, _stop, _task) = start(limits(2, 10_000)).await;
        let mut busy = Vec::new();
        for id in [1u16, 2] {
            let mut c = TcpStream::connect(addr).await.unwrap();
            c.write_all(&framed(&query(id, "slow.test"))).await.unwrap();
            busy.push(c);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut third = TcpStream::connect(addr).await.unwrap();
        let _ = third.write_all(&framed(&query(3, "a.test"))).await;
        assert_eq!(answer_on(&mut third).await, None);
        for (c, id) in busy.iter_mut().zip([1u16, 2]) {
            assert_eq!(answer_on(c).await, Some((id, 0)));
        }
    }

    #[tokio::test]
    async fn garbage_gets_what_hickory_would_answer() {
        let (addr, _stop, _task) = start(limits(4, 5_000)).await;
        let mut c = TcpStream::connect(addr).await.unwrap();
        // Fewer than 12 bytes: no answer; a response: no answer; a header with a broken
        // question: FORMERR; a handler that sends nothing: SERVFAIL. The connection goes on.
        c.write_all(&framed(&[0xab; 5])).await.unwrap();
        let mut response = query(2, "a.test");
        response[2] |= 0x80;
        c.write_all(&framed(&response)).await.unwrap();
        let mut broken = query(3, "a.test");
        broken.truncate(15);
        c.write_all(&framed(&broken)).await.unwrap();
        assert_eq!(answer_on(&mut c).await, Some((3, 1)));
        c.write_all(&framed(&query(4, "mute.test"))).await.unwrap();
        assert_eq!(answer_on(&mut c).await, Some((4, 2)));
        c.write_all(&framed(&query(5, "a.test"))).await.unwrap();
        assert_eq!(answer_on(&mut c).await, Some((5, 0)));
        // A zero length closes the connection.
        c.write_all(&[0, 0]).await.unwrap();
        assert!(closed(&mut c, Duration::from_secs(1)).await);
    }

    #[tokio::test]
    async fn stopping_closes_every_connection() {
        let (addr, stop, task) = start(limits(4, 10_000)).await;
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(&framed(&query(1, "a.test"))).await.unwrap();
        assert!(answer_on(&mut c).await.is_some());
        stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(2), task)
            .await
            .expect("the accept loop ends")
            .unwrap();
        assert!(closed(&mut c, Duration::from_secs(1)).await);
    }
}
