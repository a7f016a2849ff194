"""Assertions shared by the tests that drive the CLI through typer's CliRunner."""


def ok(result) -> str:
    """A clean success: exit 0, nothing on stderr. Returns stdout."""
    assert result.exit_code == 0, (result.exit_code, result.stderr)
    assert result.stderr == ""
    return result.stdout


def one_line_error(result, code: int) -> str:
    """A failure as users must see it: the exit code, one line on stderr, no traceback, nothing
    on stdout. Returns the line."""
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    err = result.stderr.strip()
    assert err.startswith("charrnn: error:") and "\n" not in err, err
    assert "Traceback" not in result.stderr and result.stdout == ""
    return err
