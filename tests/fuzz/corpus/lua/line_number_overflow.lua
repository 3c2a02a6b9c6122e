error("spec:99999999999: boom", 0)
