//! Messages on a reliable QUIC stream: a little-endian u32 length, then the message.
//! The length is checked against the caller's bound before anything is allocated, and
//! even within it the buffer grows only as the message's bytes arrive: announcing a large
//! message costs nothing until it is sent.

use quinn::{RecvStream, SendStream};

/// Why a framed message could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FramingError {
    /// The peer announced a message larger than allowed here.
    #[error("stream message of {len} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// Announced length.
        len: usize,
        /// The bound.
        max: usize,
    },
    /// The stream ended (cleanly) before a message began.
    #[error("stream finished")]
    Finished,
    /// The stream failed or ended inside a message.
    #[error("stream read failed: {0}")]
    Read(#[from] quinn::ReadExactError),
    /// Writing failed.
    #[error("stream write failed: {0}")]
    Write(#[from] quinn::WriteError),
}

/// The first allocation of a message's buffer; it doubles as the message arrives.
const READ_STEP: usize = 16 << 10;

/// Reads one message of at most `max` bytes.
pub async fn read_message(stream: &mut RecvStream, max: usize) -> Result<Vec<u8>, FramingError> {
    let mut prefix = [0u8; 4];
    match stream.read_exact(&mut prefix).await {
        Ok(()) => {}
        Err(quinn::ReadExactError::FinishedEarly(0)) => return Err(FramingError::Finished),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_le_bytes(prefix) as usize;
    if len > max {
        return Err(FramingError::TooLarge { len, max });
    }
    let mut message = Vec::with_capacity(len.min(READ_STEP));
    while message.len() < len {
        let filled = message.len();
        // The next piece: at most what is missing, at most what is held already.
        let piece = (len - filled).min(filled.max(READ_STEP));
        message.resize(filled + piece, 0);
        match stream.read(&mut message[filled..]).await {
            Ok(Some(n)) => message.truncate(filled + n),
            Ok(None) => return Err(quinn::ReadExactError::FinishedEarly(filled).into()),
            Err(e) => return Err(quinn::ReadExactError::ReadError(e).into()),
        }
    }
    Ok(message)
}

/// Writes one message.
pub async fn write_message(stream: &mut SendStream, message: &[u8]) -> Result<(), FramingError> {
    let len = u32::try_from(message.len()).map_err(|_| FramingError::TooLarge {
        len: message.len(),
        max: u32::MAX as usize,
    })?;
    stream.write_all(&len.to_le_bytes()).await?;
    stream.write_all(message).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::net::tls::{self, HostIdentity, ServerTrust};

    /// A host endpoint and a client connection to it, on loopback.
    async fn pair() -> (
        quinn::Endpoint,
        quinn::Endpoint,
        quinn::Connection,
        quinn::Connection,
    ) {
        let identity = HostIdentity::self_signed(&[]).expect("identity");
        let transport = || {
            Arc::new(tls::transport_config(
                Duration::from_secs(5),
                Duration::ZERO,
            ))
        };
        let server = tls::server_config(&identity, transport()).expect("server config");
        let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
        let host = quinn::Endpoint::server(server, any).expect("host endpoint");
        let mut client = quinn::Endpoint::client(any).expect("client endpoint");
        let trust = ServerTrust::Fingerprint(identity.fingerprint());
        client.set_default_client_config(tls::client_config(&trust, transport()).expect("client"));
        let addr = host.local_addr().expect("addr");
        let (to_host, from_client) = tokio::join!(
            async { client.connect(addr, "localhost").expect("connect").await },
            async { host.accept().await.expect("incoming").await }
        );
        let (to_host, from_client) = (to_host.expect("connected"), from_client.expect("accepted"));
        (host, client, to_host, from_client)
    }

    #[test]
    fn messages_of_every_size_read_back_and_bounds_hold() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let (_host, _client, to_host, from_client) = pair().await;
            let sizes = [0, 1, READ_STEP - 1, READ_STEP, READ_STEP + 1, 300_000];
            let (mut send, _) = to_host.open_bi().await.expect("stream");
            for (i, &len) in sizes.iter().enumerate() {
                let message: Vec<u8> = (0..len).map(|b| (b * 7 + i) as u8).collect();
                write_message(&mut send, &message).await.expect("write");
            }
            // Longer than the reader allows, then a message cut short by the stream's end.
            send.write_all(&1000u32.to_le_bytes())
                .await
                .expect("prefix");
            let (_, mut recv) = from_client.accept_bi().await.expect("accepted stream");
            for (i, &len) in sizes.iter().enumerate() {
                let message = read_message(&mut recv, 300_000).await.expect("read");
                let expected: Vec<u8> = (0..len).map(|b| (b * 7 + i) as u8).collect();
                assert_eq!(message, expected, "message {i} of {len} bytes");
            }
            assert!(matches!(
                read_message(&mut recv, 999).await,
                Err(FramingError::TooLarge {
                    len: 1000,
                    max: 999
                })
            ));
            let (mut send, _) = to_host.open_bi().await.expect("stream");
            send.write_all(&1000u32.to_le_bytes())
                .await
                .expect("prefix");
            send.write_all(&[1; 600]).await.expect("part");
            send.finish().expect("finish");
            let (_, mut recv) = from_client.accept_bi().await.expect("accepted stream");
            assert!(matches!(
                read_message(&mut recv, 1000).await,
                Err(FramingError::Read(quinn::ReadExactError::FinishedEarly(
                    600
                )))
            ));
            // A stream that ends between messages has finished cleanly.
            let (mut send, _) = to_host.open_bi().await.expect("stream");
            write_message(&mut send, b"last").await.expect("write");
            send.finish().expect("finish");
            let (_, mut recv) = from_client.accept_bi().await.expect("accepted stream");
            assert_eq!(read_message(&mut recv, 10).await.expect("read"), b"last");
            assert!(matches!(
                read_message(&mut recv, 10).await,
                Err(FramingError::Finished)
            ));
        });
    }
}
