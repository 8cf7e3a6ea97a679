"""
Commands for addons, as mitmproxy's C{command} module::

    from interceptor import command

    class Greeter:
        @command.command("greet")
        def greet(self, name: str, times: int = 1) -> str:
            return " ".join(["hello " + name] * times)

    ctx.master.commands.call("greet", "you", 2)
    ctx.master.commands.execute("greet 'you two' 3")

The code lives in L{interceptor.core.commands}.
"""

from interceptor.core.commands import Command, CommandError, CommandManager, command

__all__ = ["command", "Command", "CommandError", "CommandManager"]
