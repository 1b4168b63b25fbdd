//! A logging JSON-RPC proxy: what a program tells the node it uses.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// A logging JSON-RPC proxy in front of the node on `upstream`: every request body is kept,
/// then forwarded; returns its URL and the bodies. Tests use it to check what a program tells
/// the node (the node's operator is one of docs/privacy.md's adversaries).
pub fn logging_rpc_proxy(upstream: u16) -> (String, Arc<Mutex<Vec<String>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let log = Arc::new(Mutex::new(vec![]));
    let log2 = log.clone();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(c) = c else { continue };
            let log = log2.clone();
            std::thread::spawn(move || serve(c, upstream, log));
        }
    });
    (format!("http://127.0.0.1:{port}"), log)
}

fn serve(c: TcpStream, upstream: u16, log: Arc<Mutex<Vec<String>>>) {
    let mut w = c.try_clone().unwrap();
    let mut r = BufReader::new(c);
    loop {
        let mut len = 0usize;
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let l = line.to_ascii_lowercase();
            if let Some(v) = l.strip_prefix("content-length:") {
                len = v.trim().parse().unwrap();
            }
            if line == "\r\n" {
                break;
            }
        }
        let mut body = vec![0; len];
        r.read_exact(&mut body).unwrap();
        log.lock()
            .unwrap()
            .push(String::from_utf8_lossy(&body).to_string());
        let mut u = TcpStream::connect(("127.0.0.1", upstream)).unwrap();
        write!(
            u,
            "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        u.write_all(&body).unwrap();
        let mut resp = vec![];
        u.read_to_end(&mut resp).unwrap();
        let split = resp.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = String::from_utf8_lossy(&resp[..split]).to_ascii_lowercase();
        let mut rbody = resp[split + 4..].to_vec();
        if head.contains("transfer-encoding: chunked") {
            let mut out = vec![];
            let mut rest = &rbody[..];
            loop {
                let e = rest.windows(2).position(|w| w == b"\r\n").unwrap();
                let n = usize::from_str_radix(std::str::from_utf8(&rest[..e]).unwrap().trim(), 16)
                    .unwrap();
                if n == 0 {
                    break;
                }
                out.extend_from_slice(&rest[e + 2..e + 2 + n]);
                rest = &rest[e + 2 + n + 2..];
            }
            rbody = out;
        }
        write!(
            w,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            rbody.len()
        )
        .unwrap();
        w.write_all(&rbody).unwrap();
    }
}
