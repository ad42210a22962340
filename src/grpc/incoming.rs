//! The gRPC port's connections, at most so many at once: past the limit none is accepted until one
//! closes, and the rest wait in the listen backlog. HTTP/2 clients keep a few long-lived
//! connections, so the limit is far above what callers use, and far below what would take every
//! file descriptor the process has (its FHIR connections, audit spill and other ports need theirs).
//!
//! A connection must finish its TLS handshake, when the port has TLS, and send the 24 bytes of the
//! HTTP/2 preface, all within [`PREFACE_TIMEOUT`]: HTTP/2's pings start only after the preface, so
//! a client that connects (or finishes the handshake) and sends nothing would otherwise hold its
//! slot for ever, and enough of them would hold them all. The handshake runs here rather than in
//! tonic for that reason; tonic would bound the handshake alone.

use futures_util::{Stream, StreamExt};
use rustls_pki_types::CertificateDer;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;
use tokio_rustls::rustls::ServerConfig;
use tonic::transport::server::{Connected, TcpIncoming};

/// Longest a new connection may take to finish its TLS handshake and send [`PREFACE_BYTES`].
pub const PREFACE_TIMEOUT: Duration = Duration::from_secs(10);

/// The length of the HTTP/2 client preface (`PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`).
const PREFACE_BYTES: usize = 24;

/// A connection holding one of the port's slots until it is dropped.
pub struct Held {
    io: Io,
    peer: Peer,
    _slot: OwnedSemaphorePermit,
    /// Until the preface has come: when it must have, and how many of its bytes are still due.
    preface: Option<(Pin<Box<Sleep>>, usize)>,
}

enum Io {
    Plain(TcpStream),
    Handshake(Box<tokio_rustls::Accept<TcpStream>>),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    /// The handshake failed; the connection is over.
    Failed,
}

/// Who is at the other end of a call's connection, in every request's extensions. tonic's
/// `Request::remote_addr` and `peer_certs` know only tonic's own connection types, and always
/// answer `None` here: read these instead.
#[derive(Clone, Debug)]
pub struct Peer {
    address: Option<SocketAddr>,
    /// Set once the TLS handshake has verified a client certificate chain (mutual TLS). No call
    /// is read before the handshake ends, so a call never sees it unset when there is one.
    certificates: Arc<OnceLock<Arc<Vec<CertificateDer<'static>>>>>,
}

impl Peer {
    /// The address of the call's connection.
    pub fn address<T>(request: &tonic::Request<T>) -> Option<SocketAddr> {
        request.extensions().get::<Peer>()?.address
    }

    /// The client certificate chain the TLS handshake verified, leaf first.
    pub fn certificates<T>(
        request: &tonic::Request<T>,
    ) -> Option<Arc<Vec<CertificateDer<'static>>>> {
        request
            .extensions()
            .get::<Peer>()?
            .certificates
            .get()
            .cloned()
    }
}

/// The connections of `incoming`, each accepted only once a slot of `max` is free, with TLS when
/// `tls` is given, and each failing its reads and writes when its handshake and preface are not
/// done within `preface_timeout`.
pub fn limited(
    incoming: TcpIncoming,
    max: usize,
    preface_timeout: Duration,
    tls: Option<Arc<ServerConfig>>,
) -> impl Stream<Item = io::Result<Held>> {
    let slots = Arc::new(Semaphore::new(max.max(1)));
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    futures_util::stream::unfold(
        (incoming, slots, acceptor),
        move |(mut incoming, slots, acceptor)| async move {
            // The semaphore is never closed.
            let slot = slots.clone().acquire_owned().await.ok()?;
            let accepted = incoming.next().await?;
            let held = accepted.map(|stream| {
                let peer = Peer {
                    address: stream.peer_addr().ok(),
                    certificates: Arc::default(),
                };
                // The handshake is driven by the connection's own reads and writes, so that one
                // slow client never holds up the accepting of others.
                let io = match &acceptor {
                    Some(acceptor) => Io::Handshake(Box::new(acceptor.accept(stream))),
                    None => Io::Plain(stream),
                };
                Held {
                    io,
                    peer,
                    _slot: slot,
                    preface: Some((Box::pin(tokio::time::sleep(preface_timeout)), PREFACE_BYTES)),
                }
            });
            Some((held, (incoming, slots, acceptor)))
        },
    )
}

impl Connected for Held {
    type ConnectInfo = Peer;

    fn connect_info(&self) -> Peer {
        self.peer.clone()
    }
}

impl Held {
    /// Drives the TLS handshake, if one is under way, to its end.
    fn poll_handshake(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.io {
            Io::Handshake(accept) => match ready!(Pin::new(accept.as_mut()).poll(cx)) {
                Ok(stream) => {
                    if let Some(chain) = stream.get_ref().1.peer_certificates() {
                        let chain = chain.iter().map(|c| c.clone().into_owned()).collect();
                        let _ = self.peer.certificates.set(Arc::new(chain));
                    }
                    self.io = Io::Tls(Box::new(stream));
                    Poll::Ready(Ok(()))
                }
                Err(e) => {
                    self.io = Io::Failed;
                    Poll::Ready(Err(e))
                }
            },
            Io::Failed => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
            Io::Plain(_) | Io::Tls(_) => Poll::Ready(Ok(())),
        }
    }

    /// `poll` on the connection, failed instead of pending once the preface is overdue.
    fn within_deadline<T>(
        &mut self,
        cx: &mut Context<'_>,
        poll: impl FnOnce(&mut Self, &mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        let polled = match self.poll_handshake(cx) {
            Poll::Ready(Ok(())) => poll(self, cx),
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        };
        // What came in time is read even when the server is late to read it: only a wait past
        // the deadline fails.
        if polled.is_pending()
            && let Some((deadline, _)) = &mut self.preface
            && deadline.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the connection sent no request in time",
            )));
        }
        polled
    }

    /// The connection's stream, once the handshake (if any) is over.
    fn stream(&mut self) -> io::Result<Pin<&mut (dyn AsyncReadWrite + Send)>> {
        match &mut self.io {
            Io::Plain(stream) => Ok(Pin::new(stream)),
            Io::Tls(stream) => Ok(Pin::new(stream.as_mut())),
            Io::Handshake(_) | Io::Failed => Err(io::ErrorKind::NotConnected.into()),
        }
    }
}

trait AsyncReadWrite: AsyncRead + AsyncWrite + Unpin {}
impl<T: AsyncRead + AsyncWrite + Unpin> AsyncReadWrite for T {}

impl AsyncRead for Held {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let read = self.within_deadline(cx, |held, cx| held.stream()?.poll_read(cx, buf));
        if let (Poll::Ready(Ok(())), Some((_, due))) = (&read, &mut self.preface) {
            *due = due.saturating_sub(buf.filled().len() - before);
            if *due == 0 {
                self.preface = None;
            }
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
        self.within_deadline(cx, |held, cx| held.stream()?.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.within_deadline(cx, |held, cx| held.stream()?.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match &self.io {
            Io::Plain(stream) => stream.is_write_vectored(),
            // Asked once, when hyper takes the connection, before the handshake: what the TLS
            // stream will say (h2 copies more into its buffer on a stream that says no).
            Io::Tls(_) | Io::Handshake(_) => true,
            Io::Failed => false,
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.within_deadline(cx, |held, cx| held.stream()?.poll_flush(cx))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &self.io {
            // Nothing was said over the connection yet: closing it is all there is to do.
            Io::Handshake(_) | Io::Failed => Poll::Ready(Ok(())),
            Io::Plain(_) | Io::Tls(_) => self.stream()?.poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Bound on anything a test waits for, so that a regression fails rather than hangs.
    const GUARD: Duration = Duration::from_secs(20);

    /// The tests' handshake-and-preface deadline.
    const DEADLINE: Duration = Duration::from_millis(300);

    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

    /// A port's first connection (with TLS when `tls` is given), and the client's end of it.
    async fn first_connection(tls: Option<Arc<ServerConfig>>) -> (Held, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let mut incoming = Box::pin(limited(TcpIncoming::from(listener), 1, DEADLINE, tls));
        let client = TcpStream::connect(address).await.unwrap();
        let held = tokio::time::timeout(GUARD, incoming.next())
            .await
            .expect("accepted")
            .unwrap()
            .unwrap();
        (held, client)
    }

    /// The port's first connection, from a client that sent `first` and keeps its end open.
    async fn accepted(first: &[u8]) -> (Held, TcpStream) {
        let (held, mut client) = first_connection(None).await;
        client.write_all(first).await.unwrap();
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
        let (mut held, _client) = accepted(PREFACE).await;
        tokio::time::sleep(DEADLINE * 2).await;
        let mut preface = [0_u8; PREFACE_BYTES];
        held.read_exact(&mut preface).await.unwrap();
        assert_eq!(&preface[..3], b"PRI");
    }

    #[tokio::test]
    async fn a_connection_that_sent_its_preface_may_then_be_idle() {
        let (mut held, mut client) = accepted(PREFACE).await;
        let mut preface = [0_u8; PREFACE_BYTES];
        held.read_exact(&mut preface).await.unwrap();
        // Past the preface's deadline, an idle connection is HTTP/2's to keep (or ping) as it likes.
        tokio::time::sleep(DEADLINE * 2).await;
        client.write_all(b"later").await.unwrap();
        let mut later = [0_u8; 5];
        tokio::time::timeout(GUARD, held.read_exact(&mut later))
            .await
            .expect("read")
            .unwrap();
        assert_eq!(&later, b"later");
    }

    /// A TLS port's first connection (a server certificate for `localhost` from a test CA, made
    /// with openssl) and a client that trusts the CA, its handshake not yet begun.
    async fn accepted_over_tls() -> (
        Held,
        impl Future<Output = io::Result<tokio_rustls::client::TlsStream<TcpStream>>>,
    ) {
        use rustls_pki_types::ServerName;
        use rustls_pki_types::pem::PemObject;
        use tokio_rustls::rustls::{ClientConfig, RootCertStore};
        let dir = super::super::tls::tests::scratch("incoming");
        let (ca, cert, key) = super::super::tls::tests::certificates(&dir);
        let settings = super::super::tls::tests::settings(cert, key);
        let server = super::super::tls::server_config(&settings)
            .unwrap()
            .expect("TLS is configured");
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(&ca).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        let client = ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        std::fs::remove_dir_all(&dir).unwrap();

        let (held, tcp) = first_connection(Some(server)).await;
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
        let handshake = connector.connect(ServerName::try_from("localhost").unwrap(), tcp);
        (held, handshake)
    }

    #[tokio::test]
    async fn a_tls_client_that_finishes_its_handshake_and_sends_nothing_fails_once_its_preface_is_overdue()
     {
        let (mut held, handshake) = accepted_over_tls().await;
        let mut byte = [0_u8; 1];
        let (client, read) = tokio::time::timeout(GUARD, async {
            tokio::join!(handshake, held.read(&mut byte))
        })
        .await
        .expect("the read ends");
        let _client = client.expect("the client finished its handshake");
        assert!(matches!(held.io, Io::Tls(_)), "the server finished it too");
        assert_eq!(read.unwrap_err().kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test]
    async fn a_tls_client_that_never_finishes_its_handshake_fails_at_the_same_deadline() {
        let (mut held, _handshake) = accepted_over_tls().await;
        let mut byte = [0_u8; 1];
        let read = tokio::time::timeout(GUARD, held.read(&mut byte))
            .await
            .expect("the read ends");
        assert_eq!(read.unwrap_err().kind(), io::ErrorKind::TimedOut);
        assert!(matches!(held.io, Io::Handshake(_)));
    }

    #[tokio::test]
    async fn a_tls_clients_preface_is_read_in_plaintext_and_the_connection_may_then_be_idle() {
        let (mut held, handshake) = accepted_over_tls().await;
        let mut preface = [0_u8; PREFACE_BYTES];
        let (client, read) = tokio::time::timeout(GUARD, async {
            tokio::join!(
                async {
                    let mut client = handshake.await?;
                    client.write_all(PREFACE).await?;
                    client.flush().await?;
                    Ok::<_, io::Error>(client)
                },
                held.read_exact(&mut preface)
            )
        })
        .await
        .expect("the preface is read");
        let mut client = client.unwrap();
        read.unwrap();
        assert_eq!(preface, PREFACE);
        tokio::time::sleep(DEADLINE * 2).await;
        client.write_all(b"later").await.unwrap();
        client.flush().await.unwrap();
        let mut later = [0_u8; 5];
        tokio::time::timeout(GUARD, held.read_exact(&mut later))
            .await
            .expect("read")
            .unwrap();
        assert_eq!(&later, b"later");
    }
}
