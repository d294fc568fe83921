"Python checks for python.yaml: promptfoo calls them with (output, context)."


def get_assert(output, context):
    return "bees" in output


def graded(output, context):
    return {"pass": "ants" in output, "score": 0.7, "reason": "looked for ants"}


def shout(output, context):
    return output.upper()


def word_count(output, context):
    return len(output.split())


def more_vars(vars, context):
    return {"topic": vars["topic"].upper()}
