"""The one worker implementation both sites run, configured by site."""
