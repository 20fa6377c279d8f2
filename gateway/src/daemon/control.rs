//! The local control socket of a running gateway: `weft status` asks it what the gateway is
//! doing, and `weft reload` (or a test) asks it to re-read the configuration.
//!
//! One request per connection: a word (`status`, `reload`) and a newline; the answer is one
//! JSON document.

use std::path::Path;

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

/// Where `weft run` listens unless told otherwise.
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/weft/weft.sock";

/// What may be asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// The gateway's status.
    Status,
    /// Re-read the configuration and apply the difference.
    Reload,
}

impl Request {
    /// Parses one request line.
    pub fn parse(line: &str) -> Option<Self> {
        match line.trim() {
            "status" => Some(Request::Status),
            "reload" => Some(Request::Reload),
            _ => None,
        }
    }

    fn word(self) -> &'static str {
        match self {
            Request::Status => "status",
            Request::Reload => "reload",
        }
    }
}

/// Reads one request from a connection.
pub async fn read_request(stream: &mut UnixStream) -> std::io::Result<Option<Request>> {
    let mut line = String::new();
    BufReader::new(stream).take(64).read_line(&mut line).await?;
    Ok(Request::parse(&line))
}

/// Asks the gateway behind `socket` and returns its JSON answer.
pub async fn ask(socket: &Path, request: Request) -> anyhow::Result<serde_json::Value> {
    let mut stream = UnixStream::connect(socket).await.with_context(|| {
        format!(
            "connecting to {} (is `weft run` running?)",
            socket.display()
        )
    })?;
    stream
        .write_all(format!("{}\n", request.word()).as_bytes())
        .await?;
    stream.shutdown().await?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await?;
    serde_json::from_slice(&answer)
        .with_context(|| format!("reading the answer of {}", socket.display()))
}
