"""One module per command. Each ``run(args)`` builds the command's report
(a dict: the keys of its JSON document, ``exit_code`` included; ``_`` keys
for the text rendering only) and prints nothing: ``_report`` renders it."""
