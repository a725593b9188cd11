"""host/: everything that knows the machine. Nothing above this layer touches it directly."""

from gpuwizard.host.runner import CommandResult, Runner, SubprocessRunner
from gpuwizard.host.system import Host, SystemFacts

__all__ = ["CommandResult", "Host", "Runner", "SubprocessRunner", "SystemFacts"]
