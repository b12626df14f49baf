//! Easel: paint with Stable Diffusion on your own computer.
//! The library holds the engine (models, diffusion, prompts, imaging); `main.rs` is a thin CLI on top.

pub mod bench;
pub mod config;
pub mod detect;
pub mod diffusion;
pub mod document;
pub mod download;
pub mod engine;
pub mod imaging;
pub mod infotext;
pub mod kernels;
pub mod models;
pub mod params;
pub mod prompt;
pub mod request;
pub mod system;
pub mod text;
pub mod ui;
