from .teacher_prototype_hook import TeacherPrototypeHook

__all__ = ['TeacherPrototypeHook']
