"""What a run leaves on disk: the run manifest and its typed records (``manifest``,
``records``), the files under their asset names (``assets``), the producer's review
verdicts (``approvals``), quality reports read back (``quality``), the episode cut
(``assemble``), the dailies page (``dailies``) and the check of every downloaded file
(``verify``).

May import: the base modules and ``driver.story``; never rendering, the ComfyUI
connection, the farm or the CLI (they write through this package, not the reverse)."""
