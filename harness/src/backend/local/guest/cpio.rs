//! A minimal writer of the `newc` cpio format the kernel unpacks as an
//! initramfs. Uncompressed: the kernel needs no decompressor and building
//! it costs only the copy.

use std::io::{self, Write};

/// Writes a newc archive entry by entry.
pub struct CpioWriter<W: Write> {
    out: W,
    ino: u32,
    written: u64,
}

impl<W: Write> CpioWriter<W> {
    /// Starts an archive on `out`.
    pub fn new(out: W) -> Self {
        Self {
            out,
            ino: 1,
            written: 0,
        }
    }

    fn pad(&mut self) -> io::Result<()> {
        let rem = (4 - (self.written % 4) as usize) % 4;
        self.put(&[0u8; 4][..rem])
    }

    fn put(&mut self, b: &[u8]) -> io::Result<()> {
        self.out.write_all(b)?;
        self.written += b.len() as u64;
        Ok(())
    }

    fn entry(&mut self, name: &str, mode: u32, data: &[u8]) -> io::Result<()> {
        let header = format!(
            "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            self.ino,
            mode,
            0,
            0,
            1,
            0,
            data.len(),
            0,
            0,
            0,
            0,
            name.len() + 1,
            0
        );
        self.ino += 1;
        self.put(header.as_bytes())?;
        self.put(name.as_bytes())?;
        self.put(&[0])?;
        self.pad()?;
        self.put(data)?;
        self.pad()
    }

    /// Adds a directory (`path` without a leading slash).
    pub fn dir(&mut self, path: &str) -> io::Result<()> {
        self.entry(path, 0o040755, &[])
    }

    /// Adds a regular file with permission bits `perm`.
    pub fn file(&mut self, path: &str, perm: u32, data: &[u8]) -> io::Result<()> {
        self.entry(path, 0o100000 | (perm & 0o7777), data)
    }

    /// Writes the trailer and returns the output.
    pub fn finish(mut self) -> io::Result<W> {
        self.entry("TRAILER!!!", 0, &[])?;
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_lists_with_the_system_cpio_if_present() {
        let mut w = CpioWriter::new(Vec::new());
        w.dir("etc").unwrap();
        w.file("etc/hello", 0o644, b"hi\n").unwrap();
        w.file("init", 0o755, b"#!x").unwrap();
        let buf = w.finish().unwrap();
        assert_eq!(buf.len() % 4, 0);
        assert!(buf.starts_with(b"070701"));
        // Every name is present, NUL-terminated.
        for n in ["etc\0", "etc/hello\0", "init\0", "TRAILER!!!\0"] {
            assert!(buf.windows(n.len()).any(|w| w == n.as_bytes()), "{n}");
        }
        // Cross-check with a real cpio when the machine has one.
        if let Ok(mut child) = std::process::Command::new("cpio")
            .args(["-it", "--quiet"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
        {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(&buf).unwrap();
            let out = child.wait_with_output().unwrap();
            assert_eq!(
                String::from_utf8_lossy(&out.stdout),
                "etc\netc/hello\ninit\n"
            );
        }
    }
}
