"""Trip reports: expenses by day and category, totals per currency and converted, the trip's meetings.

``build`` makes the ``Report`` (data), ``rates`` converts with the
operator's rates file, and ``csv_file``, ``xlsx_file``, ``pdf_file`` render it.
"""
