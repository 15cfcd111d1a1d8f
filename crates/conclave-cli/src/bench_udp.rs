//! `conclave bench udp-floor`: what the kernel alone charges for sending the datagrams an SFU
//! forwards, on this machine.
//!
//! Owns: one sending thread that does nothing but `sendmmsg` (the media socket's own batched
//! send, `conclave_server::media::mmsg`) of fixed-size datagrams to R loopback sockets in turn,
//! and one receiving thread that drains them. The sender's CPU comes from
//! `getrusage(RUSAGE_THREAD)`, split into system and user time, per datagram. No SFU, no
//! SRTP, no str0m: whatever an SFU does per forwarded packet comes on top of this. Must not
//! touch the server or the other bench modes.

use conclave_server::media::mmsg;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// (system, user) CPU of the calling thread, in microseconds.
fn thread_cpu_us() -> (u64, u64) {
    // SAFETY: rusage is plain data; getrusage fills it in.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to a rusage.
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) };
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    (us(ru.ru_stime), us(ru.ru_utime))
}

/// Drains every receiver until `stop`, counting datagrams (blocking in `poll`, like a client
/// that sleeps between packets).
fn drain(receivers: Vec<UdpSocket>, got: Arc<AtomicU64>, stop: Arc<AtomicBool>) {
    let mut fds: Vec<libc::pollfd> =
        receivers.iter().map(|s| libc::pollfd { fd: s.as_raw_fd(), events: libc::POLLIN, revents: 0 }).collect();
    let mut batch = mmsg::RecvBatch::new();
    while !stop.load(Ordering::Relaxed) {
        // SAFETY: fds is a live array of pollfd of the stated length.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 100) };
        if ready <= 0 {
            continue;
        }
        for (pfd, socket) in fds.iter_mut().zip(&receivers) {
            if pfd.revents & libc::POLLIN != 0 {
                while let Ok(n @ 1..) = batch.recv(socket) {
                    got.fetch_add(n as u64, Ordering::Relaxed);
                }
            }
            pfd.revents = 0;
        }
    }
}

pub fn run(receivers: usize, rate: u32, seconds: u64, bytes: usize) -> anyhow::Result<()> {
    anyhow::ensure!(receivers > 0 && bytes > 0, "--receivers and --bytes must be positive");
    let sockets: Vec<UdpSocket> = (0..receivers).map(|_| UdpSocket::bind("127.0.0.1:0")).collect::<Result<_, _>>()?;
    let targets: Vec<SocketAddr> = sockets.iter().map(|s| s.local_addr()).collect::<Result<_, _>>()?;
    for s in &sockets {
        s.set_nonblocking(true)?;
    }
    let sender = UdpSocket::bind("127.0.0.1:0")?;
    sender.set_nonblocking(true)?;
    let (got, stop) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicBool::new(false)));
    let receiving = {
        let (got, stop) = (got.clone(), stop.clone());
        std::thread::spawn(move || drain(sockets, got, stop))
    };

    let mut next_target = 0;
    let mut queue = |n: usize| -> Vec<(SocketAddr, Vec<u8>)> {
        (0..n)
            .map(|_| {
                next_target = (next_target + 1) % targets.len();
                (targets[next_target], vec![0x80; bytes])
            })
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let (mut sent, mut dropped) = (0u64, 0u64);
    let mut sent_window = 0u64;
    let cpu0 = thread_cpu_us();
    let started = Instant::now();
    let mut tick = started;
    while Instant::now() < deadline {
        // Flat out: a full batch each turn; paced: what this 1 ms tick owes.
        let owed = if rate == 0 {
            mmsg::BATCH
        } else {
            let due = (tick.duration_since(started).as_micros() as u64 * u64::from(rate) / 1_000_000)
                .saturating_sub(sent_window);
            due as usize
        };
        let pending = queue(owed);
        let mut at = 0;
        while at < pending.len() {
            match mmsg::send(&sender, &pending[at..]) {
                Ok((n, _)) => at += n,
                // A full socket buffer drops what is left of this tick, as a real-time sender would.
                Err(_) => {
                    dropped += (pending.len() - at) as u64;
                    break;
                }
            }
        }
        sent += at as u64;
        sent_window += owed as u64;
        if rate != 0 {
            tick += Duration::from_millis(1);
            if let Some(wait) = tick.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
    }
    let cpu1 = thread_cpu_us();
    let secs = started.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    let _ = receiving.join();
    let per = |us: u64| us as f64 / sent.max(1) as f64;
    let (sys, user) = (cpu1.0 - cpu0.0, cpu1.1 - cpu0.1);
    println!(
        "| receivers | datagram bytes | rate asked | sent/s | received | dropped | sender system µs/datagram | sender user µs/datagram | total µs/datagram |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {receivers} | {bytes} | {} | {:.0} | {} | {dropped} | {:.2} | {:.2} | {:.2} |",
        if rate == 0 { "flat out".to_owned() } else { rate.to_string() },
        sent as f64 / secs,
        got.load(Ordering::Relaxed),
        per(sys),
        per(user),
        per(sys + user),
    );
    Ok(())
}
