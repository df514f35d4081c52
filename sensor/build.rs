//! Compiles the eBPF programs in `../sensor-ebpf` with clang into `$OUT_DIR`, one object per
//! probe family; `src/probes.rs` embeds them.

use std::path::{Path, PathBuf};
use std::process::{Command, exit};

/// The probe families, one C file each (`sensor-ebpf/src/<family>.bpf.c`).
const FAMILIES: &[&str] = &["sched", "exit", "oom", "tcp", "block"];

fn main() {
    let manifest = PathBuf::from(env("CARGO_MANIFEST_DIR"));
    let ebpf = manifest.join("../sensor-ebpf");
    let out = PathBuf::from(env("OUT_DIR"));
    println!("cargo:rerun-if-changed={}", ebpf.display());
    println!("cargo:rerun-if-env-changed=HOMEOSTAT_CLANG");

    let clang = find_clang();
    let helpers = Path::new("/usr/include/bpf/bpf_helpers.h");
    if !helpers.exists() {
        fail(&format!(
            "{} is missing: install the libbpf headers (Debian: apt-get install -y libbpf-dev)",
            helpers.display()
        ));
    }
    let arch = match env("CARGO_CFG_TARGET_ARCH").as_str() {
        "x86_64" => ("x86", "x86_64-linux-gnu"),
        "aarch64" => ("arm64", "aarch64-linux-gnu"),
        other => fail(&format!("no eBPF build for target architecture {other}")),
    };
    let multiarch = Path::new("/usr/include").join(arch.1);
    if !multiarch.join("asm/types.h").exists() && !Path::new("/usr/include/asm/types.h").exists() {
        fail(
            "asm/types.h is missing: install the kernel UAPI headers (Debian: apt-get install -y linux-libc-dev)",
        );
    }

    // Everything but the include directory, source and output: the benches compile other
    // builds of the probes (an older commit's, an empty program) exactly the same way.
    let flags: Vec<String> = ["-target", "bpf", "-O2", "-g", "-Wall", "-Werror"]
        .into_iter()
        .map(String::from)
        .chain([
            format!("-D__TARGET_ARCH_{}", arch.0),
            "-idirafter".into(),
            multiarch.display().to_string(),
        ])
        .collect();
    println!("cargo:rustc-env=HOMEOSTAT_BPF_CLANG={clang}");
    println!("cargo:rustc-env=HOMEOSTAT_BPF_CFLAGS={}", flags.join(" "));

    for family in FAMILIES {
        let source = ebpf.join("src").join(format!("{family}.bpf.c"));
        let object = out.join(format!("{family}.bpf.o"));
        let output = Command::new(&clang)
            .args(&flags)
            .arg("-I")
            .arg(ebpf.join("include"))
            .arg("-c")
            .arg(&source)
            .arg("-o")
            .arg(&object)
            .output()
            .unwrap_or_else(|e| fail(&format!("running {clang}: {e}")));
        if !output.status.success() {
            fail(&format!(
                "{clang} failed on {}:\n{}",
                source.display(),
                String::from_utf8_lossy(&output.stderr)
            ));
        }
    }
}

/// `$HOMEOSTAT_CLANG`, else `clang-19`, else `clang`: the first that runs.
fn find_clang() -> String {
    let candidates: Vec<String> = match std::env::var("HOMEOSTAT_CLANG") {
        Ok(c) => vec![c],
        Err(_) => vec!["clang-19".into(), "clang".into()],
    };
    for c in &candidates {
        if Command::new(c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return c.clone();
        }
    }
    fail(&format!(
        "no clang found (tried {}): the eBPF probes are C compiled with clang; \
         install it (Debian: apt-get install -y clang libbpf-dev, or clang-19) \
         or set HOMEOSTAT_CLANG",
        candidates.join(", ")
    ))
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| fail(&format!("cargo did not set {name}")))
}

fn fail(message: &str) -> ! {
    eprintln!("error: homeostat-sensor: {message}");
    println!(
        "cargo:warning=homeostat-sensor: {}",
        message.lines().next().unwrap_or(message)
    );
    exit(1)
}
