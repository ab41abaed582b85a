"""The report: figures, galleries and captions built from result cells alone (`writer.write`),
and each task's view of its cells (`views`)."""
