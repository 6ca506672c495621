//! WebSocket frames on raw TCP: what a well-behaved client never sends,
//! and exactly what the server writes.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use wschat::ws::frame::{Frame, OpCode, encode_frame};
use wschat::ws::{CloseCode, CloseFrame};

use super::{MASK, RFC_ACCEPT, read_http_reply, tcp, upgrade_request};

/// A masked client frame (the RFC's key, FIN as given, no RSV bits).
pub fn client_frame(fin: bool, opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(&mut out, fin, opcode, payload, Some(MASK));
    out
}

/// A WebSocket client made of raw bytes, to send what a well-behaved client
/// never would and to see exactly what the server writes.
pub struct RawClient {
    /// The socket.
    pub stream: TcpStream,
    /// Bytes read and not yet parsed into frames.
    buf: Vec<u8>,
}

impl RawClient {
    /// Connect to `addr`, upgrade on `path`, and check the 101.
    pub fn connect(addr: SocketAddr, path: &str) -> RawClient {
        RawClient::connect_with(addr, &upgrade_request(addr, path))
    }

    /// Connect, write `request` (which may have frames after the head), and
    /// check that the answer is a 101 for the RFC key.
    pub fn connect_with(addr: SocketAddr, request: &[u8]) -> RawClient {
        let mut stream = tcp(addr);
        stream.write_all(request).unwrap();
        let reply = read_http_reply(&mut stream);
        assert_eq!(reply.status, 101, "{reply:?}: {}", reply.body_text());
        assert_eq!(reply.header("Sec-WebSocket-Accept"), Some(RFC_ACCEPT));
        RawClient {
            stream,
            buf: reply.leftover,
        }
    }

    /// Write raw bytes.
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write to the server");
    }

    /// Write one masked frame.
    pub fn send_frame(&mut self, fin: bool, opcode: OpCode, payload: &[u8]) {
        self.send(&client_frame(fin, opcode, payload));
    }

    /// The next whole frame and its bytes as they were on the wire; `None`
    /// at the end of the stream (with no partial frame left over).
    pub fn try_read_frame(&mut self) -> Option<(Frame, Vec<u8>)> {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            if let Some((frame, used)) = Frame::parse(&self.buf) {
                let raw: Vec<u8> = self.buf.drain(..used).collect();
                assert_eq!(frame.header.mask, None, "a server frame is masked");
                assert_eq!(frame.header.rsv, 0, "a server frame has RSV bits");
                return Some((frame, raw));
            }
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    assert!(
                        self.buf.is_empty(),
                        "the stream ended inside a frame: {:02x?}",
                        self.buf
                    );
                    return None;
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) => panic!("reading a frame: {e} (buffered {} bytes)", self.buf.len()),
            }
        }
    }

    /// The next frame; panics at the end of the stream.
    pub fn read_frame(&mut self) -> Frame {
        self.read_frame_raw().0
    }

    /// The next frame and its wire bytes; panics at the end of the stream.
    pub fn read_frame_raw(&mut self) -> (Frame, Vec<u8>) {
        self.try_read_frame()
            .expect("the server closed the stream instead of sending a frame")
    }

    /// The next frame must be a whole (FIN) data or control frame with this
    /// opcode; returns its payload.
    pub fn expect(&mut self, opcode: OpCode) -> Vec<u8> {
        let frame = self.read_frame();
        assert_eq!(frame.header.opcode, opcode, "{frame:?}");
        assert!(frame.header.fin, "{frame:?}");
        frame.payload
    }

    /// The next frame must be a Close with `code`; then the server must
    /// close TCP (read gives 0). Returns the close frame.
    pub fn expect_close(&mut self, code: u16) -> CloseFrame {
        let frame = self.read_frame();
        assert_eq!(frame.header.opcode, OpCode::Close, "{frame:?}");
        let close = CloseFrame::parse(&frame.payload)
            .expect("the server's Close payload is valid")
            .expect("the server's Close carries a code");
        assert_eq!(
            close.code,
            CloseCode(code),
            "close reason: {:?}",
            close.reason
        );
        self.expect_eof();
        close
    }

    /// The server closed its side: no frame left, read gives 0.
    pub fn expect_eof(&mut self) {
        assert!(
            self.try_read_frame().is_none(),
            "a frame arrived instead of the end of the stream"
        );
    }
}
