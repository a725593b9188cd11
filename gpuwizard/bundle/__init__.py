"""bundle/: the air-gapped flow. `gpuwizard bundle` collects, on a connected machine, what an
offline host needs (the checked key, the four toolkit packages with the repository's signed
index, the test image, gpuwizard itself) into one archive with a manifest; `apply --bundle`
verifies that archive, unpacks it privately and serves it to the same steps as a local
file:// repository, trusted through the same fingerprint check.

A driver is never in a bundle: it depends on the kernel and the GPU of the offline host.
"""

DRIVER_NOT_IN_BUNDLE = (
    "a bundle does not carry the NVIDIA driver (it depends on this host's kernel and GPU): "
    "install it first from your distribution's media or NVIDIA's offline installer, then "
    "apply the bundle again"
)
