//! Integration tests for conclave-archive, one binary (links once). Each module tests one
//! library module against real files, real ffmpeg/ffprobe and a real moto S3 server.

mod media;
// Shared with the server's archiving tests, which use all of it (the admin user reads objects back).
#[allow(dead_code)]
mod moto;
mod t_compose;
mod t_encrypt;
mod t_encrypted_duration;
mod t_encrypted_rec;
mod t_fallback;
mod t_live;
mod t_package;
mod t_recorder;
mod t_recover;
mod t_s3;
mod t_vp9;
