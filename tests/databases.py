"""Fresh PostgreSQL databases for tests: each test (or module) gets its own, dropped after
(the helper lives in the ``wfrunner.testing`` plugin, which users' test suites share)."""

from wfrunner.testing.servers import fresh_database

__all__ = ["fresh_database"]
