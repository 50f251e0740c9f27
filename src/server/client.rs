//! A minimal KMS client: one SigV4-signed request over plain HTTP/1.1, as an SDK sends it. The
//! demo uses it to show a wire request; tools may too. (Applications use an AWS SDK.)

use super::sigv4;
use crate::crypto::Backend;
use crate::error::{Error, Result};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, SystemTime};

/// Credentials and where to send: the server's address and the signing region.
pub struct Client<'a> {
    pub addr: SocketAddr,
    pub access_key_id: &'a str,
    pub secret: &'a [u8],
    pub region: &'a str,
    pub backend: Backend,
}

impl Client<'_> {
    /// Sends `TrentService.<operation>` with the JSON `body`, signed at `now`; returns the HTTP
    /// status and the response body.
    pub fn call(&self, operation: &str, body: &[u8], now: SystemTime) -> Result<(u16, Vec<u8>)> {
        let io = |e: std::io::Error| Error::io("talking to", Path::new(&self.addr.to_string()), e);
        let host = self.addr.to_string();
        let date = sigv4::amz_format(now);
        let target = format!("TrentService.{operation}");
        let headers: Vec<(&str, &[u8])> = vec![
            ("content-type", b"application/x-amz-json-1.1"),
            ("host", host.as_bytes()),
            ("x-amz-date", date.as_bytes()),
            ("x-amz-target", target.as_bytes()),
        ];
        let req = sigv4::Request {
            method: "POST",
            path: "/",
            query: "",
            headers: &headers,
            body,
        };
        let auth = sigv4::authorization(
            self.backend,
            &req,
            self.access_key_id,
            self.secret,
            self.region,
            "kms",
            &date,
        );
        let mut s = TcpStream::connect(self.addr).map_err(io)?;
        s.set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(io)?;
        let mut wire = format!("POST / HTTP/1.1\r\nauthorization: {auth}\r\n");
        for (n, v) in &headers {
            wire.push_str(&format!("{n}: {}\r\n", String::from_utf8_lossy(v)));
        }
        wire.push_str(&format!(
            "content-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        ));
        s.write_all(wire.as_bytes()).map_err(io)?;
        s.write_all(body).map_err(io)?;
        let mut answer = Vec::new();
        s.read_to_end(&mut answer).map_err(io)?;
        let split = answer
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or_else(|| Error::usage(format!("{} answered with no HTTP response", self.addr)))?;
        let status = std::str::from_utf8(&answer[..split])
            .ok()
            .and_then(|h| h.split_whitespace().nth(1))
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| Error::usage(format!("{} answered with no HTTP status", self.addr)))?;
        Ok((status, answer[split + 4..].to_vec()))
    }
}
