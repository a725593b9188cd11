# ruff: noqa: E501  (the messages are quoted as users paste them)
"""A user pastes an error; gpuwizard names it, explains why, and says what to do.

The messages below are written the way they reach us: with `docker: Error response from
daemon:` in front, inside OCI runtime wrappers, with curly quotes from a forum, wrapped across
lines with indentation (or mid-word by a terminal), with apt's `E:`/`W:` prefixes.
"""

from __future__ import annotations

import json
import re
from importlib import resources

import pytest

from gpuwizard import failures
from gpuwizard.failures import Failure, classify, explain

OCI = (
    "docker: Error response from daemon: failed to create task for container: failed to "
    "create shim task: OCI runtime create failed: runc create failed: unable to start "
    "container process: error during container init: error running hook #0: error running "
    "hook: exit status 1, stdout: , stderr: Auto-detected mode as 'legacy'\n"
)

# (expected code, message, expected details)
KNOWN = [
    # 1 -----------------------------------------------------------------------------------
    (
        "gpu-device-driver-missing",
        'docker: Error response from daemon: could not select device driver "" with capabilities: [[gpu]].\n'
        "ERRO[0000] error waiting for container: context canceled",
        {},
    ),
    (
        "gpu-device-driver-missing",
        "Error response from daemon: could not select device driver \u201c\u201d with capabilities:\n"
        "    [[gpu]]",
        {},
    ),
    (
        "gpu-device-driver-missing",
        'could not select device driver "nvidia" with capabilities: [[gpu compute utility]]',
        {"driver": "nvidia"},
    ),
    (
        "gpu-device-driver-missing",  # quoted from memory in a forum post: the "" went missing
        "docker: Error response from daemon: could not select device driver with capabilities: "
        "[[gpu]].",
        {},
    ),
    # 2 -----------------------------------------------------------------------------------
    (
        "runtime-nvidia-unknown",
        "docker: Error response from daemon: unknown or invalid runtime name: nvidia.\n"
        "See 'docker run --help'.",
        {"runtime": "nvidia"},
    ),
    (
        "runtime-nvidia-unknown",
        "ERROR: for app  Cannot create container for service app: Unknown runtime specified nvidia",
        {"runtime": "nvidia"},
    ),
    (
        "runtime-nvidia-unknown",
        "Error response from daemon: unknown or invalid runtime name: nvidia-cdi",
        {"runtime": "nvidia-cdi"},
    ),
    # 3 -----------------------------------------------------------------------------------
    (
        "nvml-unknown-error",
        "root@4f1c2b7d9e0a:/workspace# nvidia-smi\nFailed to initialize NVML: Unknown Error",
        {},
    ),
    (
        "nvml-unknown-error",
        "RuntimeError: CUDA error ... torch.cuda.is_available() False\n"
        "  nvidia-smi -> \u201cFailed to initialize NVML: Unknown Error\u201d",
        {},
    ),
    # 4 -----------------------------------------------------------------------------------
    (
        "libnvidia-ml-missing",
        OCI + "nvidia-container-cli: initialization error: load library failed: libnvidia-ml.so.1: "
        "cannot open shared object file: no such file or directory: unknown.",
        {},
    ),
    (
        "libnvidia-ml-missing",
        "docker: Error response from daemon: OCI runtime create failed: container_linux.go:380:\n"
        "  starting container process caused: process_linux.go:545: container init caused: Running\n"
        "  hook #0:: error running hook: exit status 1, stdout: , stderr: nvidia-container-cli:\n"
        "  initialization error: load library failed: libnvidia-ml.so\n"
        ".1: cannot open shared object file: no such file or directory: unknown.",
        {},
    ),
    (
        "libnvidia-ml-missing",
        "$ nvidia-smi\nNVIDIA-SMI couldn't find libnvidia-ml.so library in your system. Please make "
        "sure that the NVIDIA Display Driver is properly installed and present in your system.",
        {},
    ),
    ("libnvidia-ml-missing", "pynvml.NVMLError_LibraryNotFound: NVML Shared Library Not Found", {}),
    # 5 -----------------------------------------------------------------------------------
    (
        "cuda-too-new",
        OCI + "nvidia-container-cli: requirement error: unsatisfied condition: cuda>=12.8, please "
        "update your driver to a newer version, or use an earlier cuda container: unknown.",
        {"cuda": "12.8"},
    ),
    (
        "cuda-too-new",
        'Error response from daemon: failed to create shim task: OCI runtime create failed: \\"nvidia-container-cli:\n'
        '     requirement error: unsatisfied condition: cuda >= 13.0, please update your driver\\"',
        {"cuda": "13.0"},
    ),
    # 6 -----------------------------------------------------------------------------------
    (
        "cuda-tag-missing",
        "Unable to find image 'nvidia/cuda:11.0-base' locally\ndocker: Error response from daemon: "
        "manifest for nvidia/cuda:11.0-base not found: manifest unknown: manifest unknown.",
        {"tag": "11.0-base"},
    ),
    (
        "cuda-tag-missing",
        "Error response from daemon: failed to resolve reference \u201cdocker.io/nvidia/cuda:latest\u201d: "
        "docker.io/nvidia/cuda:latest: not found",
        {"tag": "latest"},
    ),
    (
        "cuda-tag-missing",
        "Pulling gpu (nvidia/cuda:12.1.0-base-ubuntu22.04)...\nERROR: manifest for "
        "nvidia/cuda:12.1.0-base-ubuntu22.04 not found: manifest unknown: manifest unknown",
        {"tag": "12.1.0-base-ubuntu22.04"},
    ),
    # 7 -----------------------------------------------------------------------------------
    (
        "signed-by-conflict",
        "E: Conflicting values set for option Signed-By regarding source "
        "https://nvidia.github.io/libnvidia-container/stable/ubuntu18.04/amd64/ /: "
        "/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg != \nE: The list of sources could "
        "not be read.",
        {"source": "https://nvidia.github.io/libnvidia-container/stable/ubuntu18.04/amd64/"},
    ),
    (
        "signed-by-conflict",
        "$ sudo apt-get update\nE: Conflicting values set for option Signed-By regarding source\n"
        "   https://nvidia.github.io/libnvidia-container/stable/deb/amd64/ /:\n"
        "   /usr/share/keyrings/nvidia-container-toolkit-keyring.gpg != /etc/apt/keyrings/nvidia.gpg\n"
        "E: The list of sources could not be read.",
        {},
    ),
    ("signed-by-conflict", "E: Conflicting values set for option Signed-By", {}),
    (
        "signed-by-conflict",  # apt 3 says Error:, and another vendor's conflict comes first
        "Error: Conflicting values set for option Signed-By regarding source "
        "https://download.docker.com/linux/ubuntu/ focal: /usr/share/keyrings/docker-ce-archive-"
        "keyring.gpg != /usr/share/keyrings/docker-archive-keyring.gpg\nError: Conflicting values "
        "set for option Signed-By regarding source https://nvidia.github.io/libnvidia-container/"
        "stable/ubuntu18.04/amd64/ /: /usr/share/keyrings/nvidia-container-toolkit-keyring.gpg != "
        "\nError: The list of sources could not be read.",
        {"source": "https://nvidia.github.io/libnvidia-container/stable/ubuntu18.04/amd64/"},
    ),
    # 8 -----------------------------------------------------------------------------------
    (
        "nvidia-key-missing",
        "W: GPG error: https://nvidia.github.io/libnvidia-container/stable/deb/amd64  InRelease: The "
        "following signatures couldn't be verified because the public key is not available: "
        "NO_PUBKEY DDCAE044F796ECB0\nE: The repository "
        "'https://nvidia.github.io/libnvidia-container/stable/deb/amd64  InRelease' is not signed.",
        {"key_id": "DDCAE044F796ECB0"},
    ),
    (
        "nvidia-key-missing",
        "W: An error occurred during the signature verification. The repository is not updated and "
        "the previous index files will be used. GPG error: https://nvidia.github.io/nvidia-docker/"
        "ubuntu18.04/amd64  InRelease: The following signatures were invalid: EXPKEYSIG "
        "6ED91CA3AC1160CD NVIDIA CORPORATION (Open Source Projects) <cudatools@nvidia.com>",
        {"key_id": "6ED91CA3AC1160CD"},
    ),
    ("nvidia-key-missing", "NO_PUBKEY C95B321B61E88C1809C4F759DDCAE044F796ECB0", {}),
    # 9 -----------------------------------------------------------------------------------
    (
        "unsupported-distribution",
        "$ cat /etc/apt/sources.list.d/nvidia-docker.list\n# Unsupported distribution!\n"
        "# Check https://nvidia.github.io/nvidia-docker",
        {},
    ),
    (
        "unsupported-distribution",
        "Err:7 https://nvidia.github.io/nvidia-docker/ubuntu24.04/amd64  Release\n  404  Not Found "
        "[IP: 185.199.108.153 443]\nE: The repository "
        "'https://nvidia.github.io/nvidia-docker/ubuntu24.04/amd64  Release' does not have a Release file.",
        {"url": "https://nvidia.github.io/nvidia-docker/ubuntu24.04/amd64"},
    ),
    # 10 ----------------------------------------------------------------------------------
    (
        "driver-library-mismatch",
        OCI + "nvidia-container-cli: initialization error: nvml error: driver/library version "
        "mismatch: unknown.",
        {},
    ),
    (
        "driver-library-mismatch",
        "$ nvidia-smi\nFailed to initialize NVML: Driver/library version mismatch\n"
        "NVML library version: 580.95",
        {},
    ),
    # 11 ----------------------------------------------------------------------------------
    (
        "driver-not-loaded",
        OCI + "nvidia-container-cli: initialization error: nvml error: driver not loaded: unknown.",
        {},
    ),
    (
        "driver-not-loaded",
        "NVIDIA-SMI has failed because it couldn\u2019t communicate with the NVIDIA driver. Make sure "
        "that the latest NVIDIA driver is installed and running.",
        {},
    ),
    # 12 ----------------------------------------------------------------------------------
    (
        "docker-desktop",
        "$ docker context show\ndesktop-linux\n$ docker run --rm --gpus all ubuntu nvidia-smi\n"
        'docker: Error response from daemon: could not select device driver "" with capabilities: [[gpu]].',
        {},
    ),
    (
        "docker-desktop",
        "Cannot start: unix:///home/ana/.docker/desktop/docker.sock: "
        + OCI
        + "nvidia-container-cli: initialization error: load library failed: libnvidia-ml.so.1",
        {},
    ),
    # 13 ----------------------------------------------------------------------------------
    (
        "snap-docker",
        "I edited /etc/docker/daemon.json but snap.docker.dockerd ignores it:\n"
        "docker: Error response from daemon: unknown or invalid runtime name: nvidia.",
        {},
    ),
    (
        "snap-docker",
        "$ which docker\n/snap/bin/docker\n$ docker run --gpus all ubuntu nvidia-smi\n"
        'docker: Error response from daemon: could not select device driver "" with capabilities: [[gpu]].',
        {},
    ),
    # 14 ----------------------------------------------------------------------------------
    (
        "rootless-cgroups",
        OCI + "nvidia-container-cli: mount error: open failed: "
        "/sys/fs/cgroup/devices/user.slice/devices.allow: permission denied: unknown.",
        {},
    ),
    (
        "rootless-cgroups",
        "nvidia-container-cli: container error: failed to get device cgroup mount path: "
        "bpf_prog_query(BPF_CGROUP_DEVICE) failed: operation not permitted",
        {},
    ),
    # 15 ----------------------------------------------------------------------------------
    (
        "wsl-driver-clash",
        OCI + "nvidia-container-cli: mount error: file creation failed: "
        "/var/lib/docker/overlay2/7f3a/merged/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1: file exists: unknown.",
        {"path": "/var/lib/docker/overlay2/7f3a/merged/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1"},
    ),
    (
        "wsl-driver-clash",
        "stderr: nvidia-container-cli: mount error: file creation failed:\n"
        "      /var/lib/docker/overlay2/abc/merged/usr/lib/x86_64-linux-gnu/libcuda.so.1: file exists",
        {},
    ),
    # 16 ----------------------------------------------------------------------------------
    (
        "daemon-json-lost",
        "Removing nvidia-docker2 (2.13.0-1) ...\nPurging configuration files for nvidia-docker2 "
        "(2.13.0-1) ...",
        {},
    ),
    (
        "daemon-json-lost",
        "Configuration file '/etc/docker/daemon.json'\n ==> Modified (by you or by a script) since "
        "installation.\n ==> Package distributor has shipped an updated version.\n"
        "   What would you like to do about it ?  Your options are:",
        {},
    ),
    # 17 ----------------------------------------------------------------------------------
    (
        "ldcache-error",
        OCI + "nvidia-container-cli: ldcache error: open failed: /sbin/ldconfig.real: no such file "
        "or directory: unknown.",
        {"path": "/sbin/ldconfig.real"},
    ),
    (
        "ldcache-error",
        "nvidia-container-cli: ldcache error: process /sbin/ldconfig failed with error code: 1",
        {"path": "/sbin/ldconfig"},
    ),
    # 18 ----------------------------------------------------------------------------------
    (
        "selinux-nvml",
        "[root@rhel9 ~]# podman run --rm --device nvidia.com/gpu=all ubi9 nvidia-smi\n"
        "Failed to initialize NVML: Insufficient Permissions",
        {},
    ),
    ("selinux-nvml", "  Failed to initialize NVML:\n  Insufficient Permissions", {}),
    # 19 ----------------------------------------------------------------------------------
    (
        "cdi-unresolvable",
        'docker: Error response from daemon: could not select device driver "cdi" with '
        "capabilities: []: unresolvable CDI devices nvidia.com/gpu=all.",
        {"device": "nvidia.com/gpu=all"},
    ),
    (
        "cdi-unresolvable",
        "Error: setting up CDI devices: unresolvable CDI devices nvidia.com/gpu=0",
        {"device": "nvidia.com/gpu=0"},
    ),
    # 20 ----------------------------------------------------------------------------------
    (
        "docker-start-limit",
        "Nov 29 10:02:11 gpu01 systemd[1]: docker.service: Start request repeated too quickly.\n"
        "Nov 29 10:02:11 gpu01 systemd[1]: docker.service: Failed with result 'exit-code'.",
        {},
    ),
    (
        "docker-start-limit",
        "Job for docker.service failed because start of the service was attempted too often.\n"
        'See "systemctl status docker.service" and "journalctl -xeu docker.service" for details.',
        {},
    ),
    # 21 ----------------------------------------------------------------------------------
    (
        "cdi-mode-gpus-flag",
        OCI.replace("Auto-detected mode as 'legacy'", "Using requested mode 'cdi'")
        + "invoking the NVIDIA Container Runtime Hook directly (e.g. specifying the docker "
        "--gpus flag) is not supported. Please use the NVIDIA Container Runtime (e.g. specify the "
        "--runtime=nvidia flag) instead.: unknown.",
        {"mode": "cdi"},
    ),
    (
        "cdi-mode-gpus-flag",
        "stderr: invoking the NVIDIA Container Runtime Hook directly (e.g. specifying the\n"
        "\tdocker --gpus flag) is not supported",
        {},
    ),
    (
        "cdi-mode-gpus-flag",  # a Jetson, whose runtime works from CSV files
        "docker: Error response from daemon: failed to create task for container: failed to create "
        "shim task: OCI runtime create failed: runc create failed: unable to start container "
        "process: error during container init: error running prestart hook #0: exit status 1, "
        "stdout: , stderr: Auto-detected mode as 'csv'\ninvoking the NVIDIA Container Runtime Hook "
        "directly (e.g. specifying the docker --gpus flag) is not supported. Please use the NVIDIA "
        "Container Runtime (e.g. specify the --runtime=nvidia flag) instead.",
        {"mode": "csv"},
    ),
    # beyond the ranked table -------------------------------------------------------------
    (
        "nvidia-runtime-binary-missing",
        "docker: Error response from daemon: failed to create shim task: OCI runtime create "
        'failed: exec: "nvidia-container-runtime": executable file not found in $PATH: unknown.',
        {"binary": "nvidia-container-runtime"},
    ),
    (
        "nvidia-runtime-binary-missing",
        "Error response from daemon: fork/exec /usr/bin/nvidia-container-runtime: no such file or "
        "directory",
        {},
    ),
    (
        "toolkit-package-not-found",
        "Reading package lists... Done\nE: Unable to locate package nvidia-container-toolkit",
        {"package": "nvidia-container-toolkit"},
    ),
    (
        "toolkit-package-not-found",
        "No match for argument: nvidia-container-toolkit-1.20.0-1\nError: Unable to find a match: "
        "nvidia-container-toolkit-1.20.0-1",
        {"package": "nvidia-container-toolkit-1.20.0-1"},
    ),
    (
        "toolkit-package-not-found",
        "E: Version '1.17.8-1' for 'nvidia-container-toolkit' was not found",
        {},
    ),
    (
        "nvidia-smi-missing-in-container",
        "docker: Error response from daemon: failed to create task for container: failed to create "
        "shim task: OCI runtime create failed: runc create failed: unable to start container "
        'process: exec: "nvidia-smi": executable file not found in $PATH: unknown.',
        {},
    ),
    (
        "nvidia-smi-missing-in-container",
        "OCI runtime exec failed: exec failed: unable to start container process: exec:\n"
        "  \u201cnvidia-smi\u201d: executable file not found in $PATH: unknown",
        {},
    ),
    (
        "nvidia-smi-missing-on-host",
        "ubuntu@gpu01:~$ nvidia-smi\nCommand 'nvidia-smi' not found, but can be installed with:\n"
        "sudo apt install nvidia-utils-535",
        {},
    ),
    ("nvidia-smi-missing-on-host", "-bash: nvidia-smi: command not found", {}),
    (
        "daemon-json-invalid",
        "unable to configure the Docker daemon with file /etc/docker/daemon.json: invalid "
        "character '}' looking for beginning of object key string",
        {"file": "/etc/docker/daemon.json"},
    ),
    (
        "daemon-json-invalid",
        "dockerd[812]: unable to configure the Docker daemon with file /etc/docker/daemon.json: EOF",
        {},
    ),
    (
        "daemon-flag-conflict",
        "unable to configure the Docker daemon with file /etc/docker/daemon.json: the following "
        "directives are specified both as a flag and in the configuration file: hosts: (from flag: "
        "[fd://], from file: [unix:///var/run/docker.sock])",
        {},
    ),
    (
        "daemon-flag-conflict",
        "the following directives are specified both as a flag and in the configuration\n"
        "  file: data-root",
        {},
    ),
    (
        "default-runtime-undefined",
        "failed to start daemon: specified default runtime 'nvidia' does not exist",
        {"runtime": "nvidia"},
    ),
    (
        "default-runtime-undefined",
        "Error starting daemon: default runtime nvidia does not exist",
        {"runtime": "nvidia"},
    ),
    (
        "docker-start-failed",
        "Job for docker.service failed because the control process exited with error code.\n"
        'See "systemctl status docker.service" and "journalctl -xe" for details.',
        {},
    ),
    (
        "docker-start-failed",
        "Nov 29 10:02:09 gpu01 systemd[1]: Failed to start docker.service - Docker Application "
        "Container Engine.",
        {},
    ),
    (
        "gpu-device-unknown",
        OCI + "nvidia-container-cli: device error: 1: unknown device: unknown.",
        {"device": "1"},
    ),
    (
        "gpu-device-unknown",
        "stderr: nvidia-container-cli: device error:\n  GPU-6f1c2a9e-0000-4b5e-9d1a-7c3e2f1b0a99: "
        "unknown device",
        {"device": "GPU-6f1c2a9e-0000-4b5e-9d1a-7c3e2f1b0a99"},
    ),
    (
        "nvidia-hook-failed",
        OCI
        + "nvidia-container-cli: detection error: open failed: /proc/driver/nvidia/capabilities: "
        "permission denied: unknown.",
        {},
    ),
    (
        "nvidia-hook-failed",
        "Error response from daemon: OCI runtime create failed: error running prestart hook #0: "
        "exit status 1, stdout: , stderr: /usr/bin/nvidia-container-runtime-hook: exit status 2",
        {},
    ),
    # the CDI era (issue 14) -----------------------------------------------------------------
    (
        "legacy-cli-missing",
        "docker: Error response from daemon: failed to create task for container: failed to create "
        "shim task: OCI runtime create failed: runc create failed: unable to start container "
        "process: error during container init: error running hook #0: error running hook: exit "
        "status 1, stdout: , stderr: Auto-detected mode as 'legacy'\ncouldn't find binary "
        'nvidia-container-cli in PATH: exec: "nvidia-container-cli": executable file not found '
        "in $PATH: unknown.",
        {},
    ),
    (
        "legacy-cli-missing",
        "stderr: couldn't find binary nvidia-container-cli in PATH: exec: "
        '"nvidia-container-cli": executable file not found in $PATH',
        {},
    ),
    (
        "cdi-driver-missing",
        'docker: Error response from daemon: could not select device driver "cdi" with '
        "capabilities: [].",
        {},
    ),
    (
        "cdi-driver-missing",
        "Error response from daemon: could not select device driver \u201ccdi\u201d with "
        "capabilities: []\nSee 'docker run --help'.",
        {},
    ),
    (
        "cdi-spec-stale",
        "Error response from daemon: failed to create task for container: failed to create shim "
        "task: OCI runtime create failed: could not apply required modification to OCI "
        "specification: error modifying OCI spec: failed to inject CDI devices: failed to inject "
        'devices: failed to stat CDI host device "/dev/nvidia-uvm-tools": no such file',
        {},
    ),
    (
        "cdi-spec-stale",
        "error stat'ing file `/usr/lib/x86_64-linux-gnu/libEGL_nvidia.so.550.54.14`: no such "
        "file or directory",
        {"file": "/usr/lib/x86_64-linux-gnu/libEGL_nvidia.so.550.54.14"},
    ),
    (
        "cdi-refresh-start-limit",
        "Dec 01 09:12:03 gpu1 systemd[1]: nvidia-cdi-refresh.service: Start request repeated too "
        "quickly.",
        {},
    ),
    (
        "cdi-refresh-start-limit",
        "nvidia-cdi-refresh.service: Failed with result 'start-limit-hit'.",
        {},
    ),
    ("cuda-999-uvm", "RuntimeError: CUDA error: unknown error (999)", {}),
    (
        "cuda-999-uvm",
        "cuInit returned 999 (CUDA_ERROR_UNKNOWN)",
        {},
    ),
    (
        "cuda-802-fabric",
        "RuntimeError: Unexpected error from cudaGetDeviceCount(). Error 802: system not yet "
        "initialized",
        {},
    ),
    ("cuda-802-fabric", "cuInit failed: 802 CUDA_ERROR_SYSTEM_NOT_READY", {}),
    (
        "driver-rpc-timeout",
        "nvidia-container-cli: initialization error: driver rpc error: timed out: unknown",
        {},
    ),
    (
        "driver-rpc-timeout",
        "OCI runtime create failed: container_linux.go:380: starting container process caused: "
        "process_linux.go:545: container init caused: Running hook #0:: error running hook: exit "
        "status 1, stdout: , stderr: nvidia-container-cli: initialization error: driver rpc "
        "error: timed out: unknown",
        {},
    ),
    (
        "nvcgo-rpc-timeout",
        "nvidia-container-cli: mount error: nvcgo rpc error: timed out: unknown",
        {},
    ),
    (
        "nvcgo-rpc-timeout",
        "stderr: nvidia-container-cli: device error: 0: nvcgo rpc error: timed out",
        {},
    ),
    (
        "podman-docker",
        "Emulate Docker CLI using podman. Create /etc/containers/nodocker to quiet msg.",
        {},
    ),
    (
        "podman-docker",
        "Emulate Docker CLI using podman. Create /etc/containers/nodocker to quiet msg.\nError: "
        "unresolvable CDI devices nvidia.com/gpu=all",
        {},
    ),
    (
        "sqv-sha1-key",
        "W: OpenPGP signature verification failed: https://developer.download.nvidia.com/compute/"
        "cuda/repos/debian13/x86_64  InRelease: Sub-process /usr/bin/sqv returned an error code "
        "(1), error message is: Signing key on EB693B3035CD5710E231E123A4B469963BF863CC is not "
        "bound: No binding signature at time 2026-02-03T10:00:00Z because: Policy rejected "
        "non-revocation signature (PositiveCertification) requiring second pre-image resistance "
        "because: SHA1 is not considered secure since 2026-02-01T00:00:00Z",
        {},
    ),
    (
        "sqv-sha1-key",
        "Sub-process /usr/bin/sqv returned an error code (1), error message is: Missing key",
        {},
    ),
    (
        "flat-repo-no-release",
        "E: The repository 'https://nvidia.github.io/libnvidia-container/stable/deb/amd64 noble "
        "Release' does not have a Release file.",
        {},
    ),
    (
        "flat-repo-no-release",
        "E: The repository 'http://artifactory.example.internal/nvidia/stable/deb/amd64 jammy "
        "Release' does not have a Release file.",
        {},
    ),
    (
        "fips-rpm-digest",
        "error: nvidia-container-toolkit-1.17.8-1.x86_64.rpm: Header V3 SHA1 digest: BAD",
        {},
    ),
    (
        "fips-rpm-digest",
        "Package nvidia-container-toolkit-base: digest algorithm SHA1 not allowed in FIPS mode",
        {},
    ),
]

# Errors users paste that are not NVIDIA failures: None, or at most the right other entry.
UNRELATED = [
    "$ docker run --gpus all ubuntu nvidia-smi\ndocker: Got permission denied while trying to "
    "connect to the Docker daemon socket at unix:///var/run/docker.sock: Post "
    '"http://%2Fvar%2Frun%2Fdocker.sock/v1.24/containers/create": dial unix '
    "/var/run/docker.sock: connect: permission denied.",
    "Err:1 http://archive.ubuntu.com/ubuntu jammy InRelease\n  Temporary failure resolving "
    "'archive.ubuntu.com'\nW: Failed to fetch https://nvidia.github.io/libnvidia-container/stable/"
    "deb/amd64/InRelease  Temporary failure resolving 'nvidia.github.io'",
    "docker: Error response from daemon: toomanyrequests: You have reached your pull rate limit. "
    "You may increase the limit by authenticating and upgrading: "
    "https://www.docker.com/increase-rate-limit (pulling nvidia/cuda:12.8.1-base-ubuntu24.04)",
    "failed to register layer: write /usr/local/cuda-12.8/lib64/libcublasLt.so.12: no space left "
    "on device",
    "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 2231 (unattended-upgr)\n"
    "E: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), is another "
    "process using it?",
    "docker: Error response from daemon: manifest for myorg/trainer:1.4 not found: manifest "
    "unknown: manifest unknown.",
    "W: GPG error: https://download.docker.com/linux/ubuntu jammy InRelease: The following "
    "signatures couldn't be verified because the public key is not available: NO_PUBKEY "
    "7EA0A9C3F273FCD8",
    "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?",
    "docker: Error response from daemon: failed to create shim task: OCI runtime create failed: "
    'runc create failed: unable to start container process: exec: "python": executable file '
    "not found in $PATH: unknown.",
    "E: Unable to locate package docker-ce",
    "Nov 29 10:00:01 web systemd[1]: nginx.service: Start request repeated too quickly.",
    "E: Conflicting values set for option Signed-By regarding source "
    "https://download.docker.com/linux/ubuntu/ jammy: /etc/apt/keyrings/docker.gpg != "
    "/usr/share/keyrings/docker-archive-keyring.gpg",
    "Error: Failed to download metadata for repo 'appstream': Cannot prepare internal mirrorlist: "
    "No URLs in mirrorlist",
    "ssh: connect to host 10.0.0.5 port 22: Connection timed out",
    "$ sudo snap install docker\n$ docker run --gpus all ubuntu nvidia-smi\ndocker: Got "
    "permission denied while trying to connect to the Docker daemon socket at "
    "unix:///var/run/docker.sock: connect: permission denied",
]


@pytest.mark.parametrize(
    ("code", "message", "details"), KNOWN, ids=[f"{c}-{i}" for i, (c, _, _) in enumerate(KNOWN)]
)
def test_a_pasted_message_is_recognised_with_its_details(
    code: str, message: str, details: dict[str, str]
) -> None:
    failure = classify(message)
    assert failure is not None, f"not recognised: {message!r}"
    assert failure.code == code
    for key, value in details.items():
        assert failure.details.get(key) == value


@pytest.mark.parametrize("message", UNRELATED, ids=range(len(UNRELATED)))
def test_an_unrelated_error_is_not_taken_for_an_nvidia_failure(message: str) -> None:
    failure = classify(message)
    assert failure is None, f"misread as {failure.code if failure else None}: {message!r}"


def test_every_known_failure_has_at_least_two_real_looking_variants() -> None:
    counts: dict[str, int] = {}
    for code, _, _ in KNOWN:
        counts[code] = counts.get(code, 0) + 1
    codes = [row.code for row in failures.table()]
    assert len(codes) == len(set(codes)), "codes must be unique"
    thin = {c: counts.get(c, 0) for c in codes if counts.get(c, 0) < 2}
    assert thin == {}


def test_the_cdi_mode_message_carries_its_own_fix_not_the_generic_hook_one() -> None:
    failure = classify(KNOWN[[c for c, _, _ in KNOWN].index("cdi-mode-gpus-flag")][1])
    assert failure is not None
    assert "--runtime nvidia" in failure.fix


def test_libnvidia_ml_inside_an_oci_wrapper_is_the_driver_not_a_generic_hook_error() -> None:
    message = (
        OCI + "nvidia-container-cli: initialization error: load library failed: libnvidia-ml.so.1"
    )
    failure = classify(message)
    assert failure is not None and failure.code == "libnvidia-ml-missing"
    assert failure.number == 4


def test_the_fix_follows_the_distribution_where_it_matters() -> None:
    message = "E: Unable to locate package nvidia-container-toolkit"
    debian, rhel, suse, other = (
        classify(message, family) for family in ("debian", "rhel", "suse", None)
    )
    assert debian and rhel and suse and other
    assert "apt-get update" in debian.fix
    assert "/etc/yum.repos.d/" in rhel.fix
    assert "zypper ar" in suse.fix
    assert "apt-cache policy" in debian.checks[1]
    assert "dnf" in rhel.checks[1]
    key = "NO_PUBKEY DDCAE044F796ECB0"
    key_deb, key_rpm = classify(key, "debian"), classify(key, "rhel")
    assert key_deb and key_rpm
    assert "gpg --batch --yes --dearmor" in key_deb.fix
    assert "rpm --import" in key_rpm.fix


def test_details_asked_for_appear_in_the_explanation() -> None:
    text = explain(
        "nvidia-container-cli: requirement error: unsatisfied condition: cuda>=13.0, "
        "please update your driver to a newer version"
    )
    assert "cuda=13.0" in text
    assert "CUDA 13.0" in text
    assert "{" not in text.replace("{{", "").replace("'{", "")


def test_an_unknown_message_says_so_and_points_at_doctor() -> None:
    text = explain("segmentation fault (core dumped)")
    assert text.startswith("Not recognised")
    assert "gpuwizard doctor" in text
    assert classify("") is None and classify("   \n ") is None


def test_failure_serialises_to_json_and_is_frozen() -> None:
    failure = classify("NO_PUBKEY DDCAE044F796ECB0")
    assert isinstance(failure, Failure)
    data = json.loads(json.dumps(failure.to_json()))
    assert data["code"] == "nvidia-key-missing"
    assert data["details"] == {"key_id": "DDCAE044F796ECB0"}
    assert set(data) >= {"code", "title", "cause", "checks", "fix"}
    with pytest.raises(AttributeError):
        failure.code = "x"  # type: ignore[misc]


def test_every_rendered_text_is_free_of_unfilled_placeholders() -> None:
    for row in failures.table():
        for family in (None, "debian", "rhel", "suse"):
            failure = failures.get(row.code, family=family)
            for text in (failure.cause, failure.fix, *failure.checks):
                assert not re.search(r"(?<!\{)\{[a-z_]+\}(?!\})", text), (row.code, text)


def test_the_table_is_data_that_ships_with_the_package() -> None:
    raw = resources.files("gpuwizard").joinpath("data/failures.json").read_text(encoding="utf-8")
    rows = json.loads(raw)["failures"]
    assert len(rows) >= 21
    for row in rows:
        assert {"code", "title", "patterns", "cause", "checks", "fix"} <= set(row)
        for pattern in row["patterns"]:
            re.compile(pattern)
            # squashing removes spaces; one inside a character class would change its meaning
            assert not re.search(r"\[[^\]]* [^\]]*\]", pattern.replace(r"[\w ]", "")), pattern
