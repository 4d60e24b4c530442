"""The lead page: one HTML page per lead for the rep an alert reached, opened from a signed link.

``links`` signs and checks the expiring links (no admin token in a browser), ``history`` replays
the lead's score over time, ``chart`` draws it as inline SVG (no plotting library in Lambda), and
``page`` writes the HTML, every lead value escaped, under a strict Content-Security-Policy.
"""
