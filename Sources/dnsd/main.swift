print("dnsd")
