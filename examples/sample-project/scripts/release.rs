#!/usr/bin/env rust-script
//! A script: the header goes after the shebang line.
fn main() {
    println!("releasing the sample project");
}
