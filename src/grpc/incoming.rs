//! The gRPC port's connections, at most so many at once: past the limit none is accepted until one
//! closes, and the rest wait in the listen backlog. HTTP/2 clients keep a few long-lived
//! connections, so the limit is far above what callers use, and far below what would take every
//! file descriptor the process has (its FHIR connections, audit spill and other ports need theirs).
//!
//! A connection must send its first bytes (the 24 of the HTTP/2 preface, or as many of a TLS
//! handshake) within [`PREFACE_TIMEOUT`]: HTTP/2's pings and the TLS handshake's own timeout start
//! only later, so a client that connects and sends nothing would otherwise hold its slot for ever,
//! and enough of them would hold them all.

use futures_util::{Stream, StreamExt};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;
use tonic::transport::server::{Connected, TcpConnectInfo, TcpIncoming};

/// Longest a new connection may take to send its first [`PREFACE_BYTES`].
pub const PREFACE_TIMEOUT: Duration = Duration::from_secs(10);

/// The length of the HTTP/2 client preface (`PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`).
const PREFACE_BYTES: usize = 24;

/// A connection holding one of the port's slots until it is dropped.
pub struct Held {
    stream: TcpStream,
    _slot: OwnedSemaphorePermit,
    /// Until the first bytes have come: when they must have, and how many are still due.
    preface: Option<(Pin<Box<Sleep>>, usize)>,
}

/// The connections of `incoming`, each accepted only once a slot of `max` is free, and each
/// failing its reads when its first bytes do not come within `preface_timeout`.
pub fn limited(
    incoming: TcpIncoming,
    max: usize,
    preface_timeout: Duration,
) -> impl Stream<Item = io::Result<Held>> {
    let slots = Arc::new(Semaphore::new(max.max(1)));
    futures_util::stream::unfold((incoming, slots), move |(mut incoming, slots)| async move {
        // The semaphore is never closed.
        let slot = slots.clone().acquire_owned().await.ok()?;
        let accepted = incoming.next().await?;
        let held = accepted.map(|stream| Held {
            stream,
            _slot: slot,
            preface: Some((Box::pin(tokio::time::sleep(preface_timeout)), PREFACE_BYTES)),
        });
        Some((held, (incoming, slots)))
    })
}

impl Connected for Held {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.stream.connect_info()
    }
}

impl AsyncRead for Held {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let read = Pin::new(&mut self.stream).poll_read(cx, buf);
        // Bytes that came in time are read even when the server is late to read them: only a
        // read that would wait past the deadline fails.
        let mut preface_read = false;
        if let Some((deadline, due)) = &mut self.preface {
            match &read {
                Poll::Ready(Ok(())) => {
                    *due = due.saturating_sub(buf.filled().len() - before);
                    preface_read = *due == 0;
                }
                Poll::Pending if deadline.as_mut().poll(cx).is_ready() => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the connection sent no request in time",
                    )));
                }
                _ => {}
            }
        }
        if preface_read {
            self.preface = None;
        }
        read
    }
}

impl AsyncWrite for Held {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Bound on anything a test waits for, so that a regression fails rather than hangs.
    const GUARD: Duration = Duration::from_secs(20);

    /// The port's first connection, from a client that sent `first` and keeps its end open.
    async fn accepted(first: &[u8]) -> (Held, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let incoming = limited(TcpIncoming::from(listener), 1, Duration::from_millis(300));
        let mut incoming = Box::pin(incoming);
        let mut client = TcpStream::connect(address).await.unwrap();
        client.write_all(first).await.unwrap();
        let held = tokio::time::timeout(GUARD, incoming.next())
            .await
            .expect("accepted")
            .unwrap()
            .unwrap();
        (held, client)
    }

    #[tokio::test]
    async fn a_connection_that_sends_nothing_fails_once_its_preface_is_overdue() {
        let (mut held, _client) = accepted(b"").await;
        let mut byte = [0_u8; 1];
        let read = tokio::time::timeout(GUARD, held.read(&mut byte))
            .await
            .expect("the read ends");
        assert_eq!(read.unwrap_err().kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test]
    async fn a_preface_that_came_in_time_is_read_even_when_the_server_reads_it_late() {
        let (mut held, _client) = accepted(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await;
        tokio::time::sleep(Duration::from_millis(600)).await;
        let mut preface = [0_u8; PREFACE_BYTES];
        held.read_exact(&mut preface).await.unwrap();
        assert_eq!(&preface[..3], b"PRI");
    }

    #[tokio::test]
    async fn a_connection_that_sent_its_preface_may_then_be_idle() {
        let (mut held, mut client) = accepted(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await;
        let mut preface = [0_u8; PREFACE_BYTES];
        held.read_exact(&mut preface).await.unwrap();
        // Past the preface's deadline, an idle connection is HTTP/2's to keep (or ping) as it likes.
        tokio::time::sleep(Duration::from_millis(600)).await;
        client.write_all(b"later").await.unwrap();
        let mut later = [0_u8; 5];
        tokio::time::timeout(GUARD, held.read_exact(&mut later))
            .await
            .expect("read")
            .unwrap();
        assert_eq!(&later, b"later");
    }
}
