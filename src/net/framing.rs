//! Messages on a reliable QUIC stream: a little-endian u32 length, then the message.
//! The length is checked against the caller's bound before anything is allocated.

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
    let mut message = vec![0u8; len];
    stream.read_exact(&mut message).await?;
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
