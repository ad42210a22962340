//! The gRPC port's connections, at most so many at once: past the limit none is accepted until one
//! closes, and the rest wait in the listen backlog. HTTP/2 clients keep a few long-lived
//! connections, so the limit is far above what callers use, and far below what would take every
//! file descriptor the process has (its FHIR connections, audit spill and other ports need theirs).

use futures_util::{Stream, StreamExt};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::transport::server::{Connected, TcpConnectInfo, TcpIncoming};

/// A connection holding one of the port's slots until it is dropped.
pub struct Held {
    stream: TcpStream,
    _slot: OwnedSemaphorePermit,
}

/// The connections of `incoming`, each accepted only once a slot of `max` is free.
pub fn limited(incoming: TcpIncoming, max: usize) -> impl Stream<Item = io::Result<Held>> {
    let slots = Arc::new(Semaphore::new(max.max(1)));
    futures_util::stream::unfold((incoming, slots), |(mut incoming, slots)| async move {
        // The semaphore is never closed.
        let slot = slots.clone().acquire_owned().await.ok()?;
        let accepted = incoming.next().await?;
        let held = accepted.map(|stream| Held {
            stream,
            _slot: slot,
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
        Pin::new(&mut self.stream).poll_read(cx, buf)
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
