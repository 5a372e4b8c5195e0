//! PostgreSQL protocol 3.0 framing, as much as the front door needs: the untagged packets that
//! open a connection (`SSLRequest`, `GSSENCRequest`, `CancelRequest`, `StartupMessage`), tagged
//! messages (`tag: u8`, `length: u32` counting itself, body), and the few messages the front
//! door writes itself.
//!
//! Lengths are checked before anything is allocated, so a peer announcing a huge message is
//! refused rather than served: [`MAX_STARTUP_LEN`] for opening packets, a caller-chosen limit
//! for tagged ones; and a tagged message's buffer grows as its bytes arrive, so what a length
//! only announces is never allocated.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt};

/// The least a tagged message's buffer grows by when its bytes need more room, and its first
/// allocation (at most the message's length).
const GROWTH: usize = 8 * 1024;

/// The `SSLRequest` code: the client asks for TLS before its startup message.
pub const SSL_REQUEST: u32 = 80_877_103;
/// The `GSSENCRequest` code: the client asks for GSSAPI encryption, which is answered `N`.
pub const GSSENC_REQUEST: u32 = 80_877_104;
/// The `CancelRequest` code: followed by a backend's process id and secret key.
pub const CANCEL_REQUEST: u32 = 80_877_102;
/// Protocol version 3.0, the one the front door speaks.
pub const PROTOCOL_3_0: u32 = 3 << 16;
/// The longest opening packet accepted. PostgreSQL itself allows 10,000 bytes.
pub const MAX_STARTUP_LEN: usize = 10_000;

/// A packet that opens a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Opening {
    /// `SSLRequest`.
    Ssl,
    /// `GSSENCRequest`.
    GssEnc,
    /// `CancelRequest` for the backend `process_id`, and the packet as received, to pass on.
    Cancel {
        /// The backend process to cancel.
        process_id: u32,
        /// The whole packet, length included.
        packet: Vec<u8>,
    },
    /// `StartupMessage`: the protocol version and the parameters (`user`, `database`, …) in
    /// the order sent.
    Startup {
        /// Major version in the high 16 bits, minor in the low 16.
        version: u32,
        /// Name–value pairs.
        parameters: Vec<(String, String)>,
    },
}

impl Opening {
    /// The value of startup parameter `name`, if this is a startup message that has it.
    pub fn parameter(&self, name: &str) -> Option<&str> {
        match self {
            Opening::Startup { parameters, .. } => parameters
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str()),
            _ => None,
        }
    }
}

/// Reads one opening packet. An unknown code, a malformed parameter list, a parameter given
/// twice, or a length outside 8..=[`MAX_STARTUP_LEN`] is an [`io::ErrorKind::InvalidData`]
/// error.
pub async fn read_opening<R: AsyncRead + Unpin>(reader: &mut R) -> io::Result<Opening> {
    let len = usize::try_from(reader.read_u32().await?).unwrap_or(usize::MAX);
    if !(8..=MAX_STARTUP_LEN).contains(&len) {
        return Err(invalid(format!("opening packet of {len} bytes")));
    }
    let mut body = vec![0; len - 4];
    reader.read_exact(&mut body).await?;
    let code = u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
    match code {
        SSL_REQUEST if len == 8 => Ok(Opening::Ssl),
        GSSENC_REQUEST if len == 8 => Ok(Opening::GssEnc),
        CANCEL_REQUEST if len == 16 => {
            let process_id = u32::from_be_bytes([body[4], body[5], body[6], body[7]]);
            let mut packet = Vec::with_capacity(len);
            packet.extend_from_slice(&u32::try_from(len).unwrap_or(16).to_be_bytes());
            packet.extend_from_slice(&body);
            Ok(Opening::Cancel { process_id, packet })
        }
        version if version >> 16 == 3 => Ok(Opening::Startup {
            version,
            parameters: parameters(&body[4..])?,
        }),
        other => Err(invalid(format!(
            "unsupported protocol or request code {other}"
        ))),
    }
}

/// The `name\0value\0…\0` list of a startup message.
fn parameters(mut list: &[u8]) -> io::Result<Vec<(String, String)>> {
    let mut parameters = Vec::new();
    loop {
        let (name, rest) = cstr(list)?;
        if name.is_empty() {
            return if rest.is_empty() {
                Ok(parameters)
            } else {
                Err(invalid("bytes after the startup parameters"))
            };
        }
        let (value, rest) = cstr(rest)?;
        // A name given twice would let the server see another value (it keeps the last) than
        // the one a check saw: refused.
        if parameters.iter().any(|(seen, _)| seen == name) {
            return Err(invalid(format!("startup parameter {name:?} given twice")));
        }
        parameters.push((name.to_owned(), value.to_owned()));
        list = rest;
    }
}

/// A NUL-terminated UTF-8 string at the start of `bytes`, and what follows it.
pub fn cstr(bytes: &[u8]) -> io::Result<(&str, &[u8])> {
    let end = bytes
        .iter()
        .position(|&b| b == 0)
        .ok_or_else(|| invalid("a string without its NUL terminator"))?;
    let text =
        std::str::from_utf8(&bytes[..end]).map_err(|_| invalid("a string that is not UTF-8"))?;
    Ok((text, &bytes[end + 1..]))
}

/// One tagged message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The message type, e.g. `b'p'` for a password.
    pub tag: u8,
    /// The body, without tag and length.
    pub body: Vec<u8>,
}

/// Reads one tagged message whose body is at most `max_body` bytes; `Ok(None)` at a clean end
/// of stream before the tag. A length below 4 or a body over `max_body` is an
/// [`io::ErrorKind::InvalidData`] error.
pub async fn read_message<R: AsyncRead + Unpin>(
    reader: &mut R,
    max_body: usize,
) -> io::Result<Option<Message>> {
    let mut frame = Vec::new();
    if !read_frame(reader, max_body, &mut frame).await? {
        return Ok(None);
    }
    let body = frame.split_off(5);
    Ok(Some(Message {
        tag: frame[0],
        body,
    }))
}

/// Reads one tagged message as it came (tag, length, body) into `frame`, replacing what it
/// held and reusing its capacity; `false` at a clean end of stream before the tag. The same
/// limits and errors as [`read_message`]. `frame[0]` is the tag and `frame[5..]` the body.
///
/// `frame` grows as the body's bytes arrive: by what it holds already, at least `GROWTH`,
/// never beyond the message; so it never holds more than twice what arrived (plus
/// `GROWTH`), whatever the length announced.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    max_body: usize,
    frame: &mut Vec<u8>,
) -> io::Result<bool> {
    read_frame_counted(reader, max_body, frame, |_| {}).await
}

/// [`read_frame`], calling `grown` with `frame`'s capacity each time it grows, while the
/// message is still arriving: for a count of the memory held ([`super::buffers`]).
pub async fn read_frame_counted<R: AsyncRead + Unpin>(
    reader: &mut R,
    max_body: usize,
    frame: &mut Vec<u8>,
    mut grown: impl FnMut(usize),
) -> io::Result<bool> {
    let tag = match reader.read_u8().await {
        Ok(tag) => tag,
        Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => return Ok(false),
        Err(error) => return Err(error),
    };
    let len = reader.read_u32().await?;
    let body_len = usize::try_from(len).unwrap_or(usize::MAX).wrapping_sub(4);
    if len < 4 || body_len > max_body {
        return Err(invalid(format!(
            "message {:?} of {len} bytes",
            char::from(tag)
        )));
    }
    frame.clear();
    frame.push(tag);
    frame.extend_from_slice(&len.to_be_bytes());
    let total = 5 + body_len;
    while frame.len() < total {
        let missing = total - frame.len();
        if frame.len() == frame.capacity() {
            frame.reserve_exact(missing.min(frame.len().max(GROWTH)));
            grown(frame.capacity());
        }
        let room = (frame.capacity() - frame.len()).min(missing);
        let limit = u64::try_from(room).unwrap_or(u64::MAX);
        if (&mut *reader).take(limit).read_buf(frame).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
    Ok(true)
}

/// Appends a tagged message with `body` to `out`.
pub fn put_message(out: &mut Vec<u8>, tag: u8, body: &[u8]) {
    out.push(tag);
    out.extend_from_slice(&length(body.len()).to_be_bytes());
    out.extend_from_slice(body);
}

/// A message's length field for a body of `body_len` bytes (saturating; bodies here are small).
fn length(body_len: usize) -> u32 {
    u32::try_from(body_len + 4).unwrap_or(u32::MAX)
}

/// A `StartupMessage` (protocol 3.0) with `parameters`.
pub fn startup_message<'a>(parameters: impl IntoIterator<Item = (&'a str, &'a str)>) -> Vec<u8> {
    let mut body = PROTOCOL_3_0.to_be_bytes().to_vec();
    for (name, value) in parameters {
        put_cstr(&mut body, name);
        put_cstr(&mut body, value);
    }
    body.push(0);
    let mut packet = length(body.len()).to_be_bytes().to_vec();
    packet.extend_from_slice(&body);
    packet
}

/// `AuthenticationCleartextPassword`: DSQL asks for the IAM token this way.
pub fn cleartext_password_request() -> Vec<u8> {
    let mut out = Vec::with_capacity(9);
    put_message(&mut out, b'R', &3_u32.to_be_bytes());
    out
}

/// `NegotiateProtocolVersion`: the newest minor version of protocol 3 the front door speaks
/// (0), and the `_pq_.` options it does not know.
pub fn negotiate_protocol_version(unknown_options: &[&str]) -> Vec<u8> {
    let mut body = 0_u32.to_be_bytes().to_vec();
    body.extend_from_slice(
        &u32::try_from(unknown_options.len())
            .unwrap_or(0)
            .to_be_bytes(),
    );
    for option in unknown_options {
        put_cstr(&mut body, option);
    }
    let mut out = Vec::new();
    put_message(&mut out, b'v', &body);
    out
}

/// The password of a `PasswordMessage` body (`p`).
pub fn password(body: &[u8]) -> io::Result<&str> {
    cstr(body).map(|(password, _)| password)
}

/// An `ErrorResponse` with severity `FATAL` or `ERROR`, SQLSTATE `code`, `message` and an
/// optional `hint`.
pub fn error_response(severity: &str, code: &str, message: &str, hint: Option<&str>) -> Vec<u8> {
    let mut body = Vec::new();
    for (field, value) in [
        (b'S', severity),
        (b'V', severity),
        (b'C', code),
        (b'M', message),
    ] {
        body.push(field);
        put_cstr(&mut body, value);
    }
    if let Some(hint) = hint {
        body.push(b'H');
        put_cstr(&mut body, hint);
    }
    body.push(0);
    let mut out = Vec::new();
    put_message(&mut out, b'E', &body);
    out
}

/// Appends `text` and its NUL terminator.
fn put_cstr(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(text.as_bytes());
    out.push(0);
}

fn invalid(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn opening(bytes: &[u8]) -> io::Result<Opening> {
        read_opening(&mut &bytes[..]).await
    }

    #[tokio::test]
    async fn a_startup_message_reads_back_with_its_parameters() {
        let packet = startup_message([("user", "admin"), ("database", "postgres")]);
        let read = opening(&packet).await.expect("a startup message");
        assert_eq!(
            read,
            Opening::Startup {
                version: PROTOCOL_3_0,
                parameters: vec![
                    ("user".into(), "admin".into()),
                    ("database".into(), "postgres".into())
                ],
            }
        );
        assert_eq!(read.parameter("user"), Some("admin"));
        assert_eq!(read.parameter("options"), None);
    }

    #[tokio::test]
    async fn requests_are_recognised_by_their_codes() {
        let ssl = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
        assert_eq!(opening(&ssl).await.expect("SSLRequest"), Opening::Ssl);
        let gss = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30];
        assert_eq!(opening(&gss).await.expect("GSSENCRequest"), Opening::GssEnc);
        let cancel = [
            0, 0, 0, 16, 0x04, 0xd2, 0x16, 0x2e, 0, 0, 0x30, 0x39, 1, 2, 3, 4,
        ];
        assert_eq!(
            opening(&cancel).await.expect("CancelRequest"),
            Opening::Cancel {
                process_id: 12345,
                packet: cancel.to_vec()
            }
        );
    }

    #[tokio::test]
    async fn malformed_openings_are_refused() {
        for bad in [
            &[0, 0, 0, 4][..],                                // too short
            &[0, 1, 0, 0, 0, 3, 0, 0][..],                    // too long
            &[0, 0, 0, 8, 0, 2, 0, 0][..],                    // protocol 2
            &[0, 0, 0, 12, 0, 3, 0, 0, b'u', 0, b'x', 0][..], // no final NUL
            &[0, 0, 0, 11, 0, 3, 0, 0, 0xff, 0, 0][..],       // not UTF-8
        ] {
            let error = opening(bad).await.expect_err("refused");
            assert!(
                matches!(
                    error.kind(),
                    io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof
                ),
                "{bad:?}: {error}"
            );
        }
    }

    #[tokio::test]
    async fn tagged_messages_are_bounded_and_end_cleanly() {
        let mut bytes = Vec::new();
        put_message(&mut bytes, b'p', b"token\0");
        let mut reader = &bytes[..];
        let message = read_message(&mut reader, 64)
            .await
            .expect("read")
            .expect("a message");
        assert_eq!(message.tag, b'p');
        assert_eq!(password(&message.body).expect("a password"), "token");
        assert_eq!(read_message(&mut reader, 64).await.expect("end"), None);
        let error = read_message(&mut &bytes[..], 3)
            .await
            .expect_err("too long");
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
    }

    #[tokio::test]
    async fn an_announced_length_is_not_allocated_before_its_bytes_arrive() {
        let mut bytes = vec![b'Q'];
        bytes.extend_from_slice(&(256_u32 << 20).to_be_bytes());
        bytes.extend_from_slice(&[b'x'; 100]);
        let mut frame = Vec::new();
        let error = read_frame(&mut &bytes[..], 1 << 30, &mut frame)
            .await
            .expect_err("the body never comes");
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(frame.len(), 105);
        assert!(frame.capacity() <= 2 * 105 + GROWTH, "{}", frame.capacity());
    }

    /// Runs `future` to completion on a fresh single-threaded runtime.
    fn block_on<F: Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime")
            .block_on(future)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// Whatever a peer sends first, reading it answers (a packet or an error) and never
        /// panics or reads past what a length allows.
        #[test]
        fn random_bytes_never_panic_the_framing(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
        ) {
            block_on(async {
                let _ = read_opening(&mut &bytes[..]).await;
                let mut reader = &bytes[..];
                while let Ok(Some(_)) = read_message(&mut reader, 128).await {}
            });
        }

        /// Random bytes behind a valid length and protocol code: still no panic.
        #[test]
        fn random_startup_bodies_never_panic(
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
        ) {
            let mut packet = u32::try_from(body.len() + 8).expect("small").to_be_bytes().to_vec();
            packet.extend_from_slice(&PROTOCOL_3_0.to_be_bytes());
            packet.extend_from_slice(&body);
            let _ = block_on(read_opening(&mut &packet[..]));
        }

        /// Any startup message this module writes reads back as written.
        #[test]
        fn startup_messages_round_trip(
            parameters in proptest::collection::btree_map("[a-z_]{1,12}", "[ -~]{0,24}", 0..6),
        ) {
            let packet = startup_message(parameters.iter().map(|(n, v)| (n.as_str(), v.as_str())));
            let read = block_on(read_opening(&mut &packet[..])).expect("a startup message");
            let expected: Vec<(String, String)> = parameters.into_iter().collect();
            proptest::prop_assert_eq!(
                read,
                Opening::Startup { version: PROTOCOL_3_0, parameters: expected }
            );
        }
    }

    #[test]
    fn an_error_response_carries_its_fields() {
        let out = error_response("FATAL", "28P01", "access denied", Some("try again"));
        assert_eq!(out[0], b'E');
        let body = &out[5..];
        assert_eq!(
            body,
            b"SFATAL\0VFATAL\0C28P01\0Maccess denied\0Htry again\0\0".as_slice()
        );
        assert_eq!(
            u32::from_be_bytes([out[1], out[2], out[3], out[4]]) as usize,
            body.len() + 4
        );
    }
}
